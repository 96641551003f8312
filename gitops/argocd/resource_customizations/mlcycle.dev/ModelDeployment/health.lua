-- Argo CD health of an mlcycle ModelDeployment: Healthy while the asked-for model version
-- serves on every replica (Ready=True), Degraded when it cannot roll out (a missing model,
-- a foreign training runtime, no replica available), Progressing during a rollout.
local hs = {}
local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the mlcycle operator"
  return hs
end
local generation = obj.metadata.generation or 0
if status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "The operator has not yet handled generation " .. generation
  return hs
end
local conditions = {}
for _, condition in ipairs(status.conditions or {}) do
  conditions[condition.type] = condition
end
local ready, degraded = conditions["Ready"], conditions["Degraded"]
local available = conditions["Available"]
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = degraded.message
elseif status.phase == "Failed" or status.phase == "Degraded" then
  hs.status = "Degraded"
  hs.message = ready and ready.message or status.phase
elseif available ~= nil and available.status == "False" and status.phase ~= "Progressing" then
  hs.status = "Degraded"
  hs.message = available.message
elseif status.phase == "Available" and ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
else
  hs.status = "Progressing"
  hs.message = ready and ready.message or status.phase
end
return hs
