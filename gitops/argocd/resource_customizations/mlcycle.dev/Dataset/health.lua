-- Argo CD health of an mlcycle Dataset: Healthy once a version is ingested (Ready=True),
-- Degraded when ingestion failed, Progressing while the operator has not caught up or
-- the ingestion Job runs.
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
local ready = nil
for _, condition in ipairs(status.conditions or {}) do
  if condition.type == "Ready" then ready = condition end
end
local message = ready and ready.message or status.phase
if status.phase == "Failed" or (ready ~= nil and ready.status == "False") then
  hs.status = "Degraded"
elseif status.phase == "Ready" and ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
else
  hs.status = "Progressing"
end
hs.message = message
return hs
