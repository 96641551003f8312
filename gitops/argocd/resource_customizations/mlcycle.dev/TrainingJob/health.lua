-- Argo CD health of an mlcycle TrainingJob: Healthy when the run succeeded (even if a gate
-- kept its model from being promoted: that is a result, not a fault), Degraded when it
-- failed or cannot run, Progressing while it waits for its Dataset or trains.
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
local ready = conditions["Ready"]
hs.message = ready and ready.message or status.phase
if status.phase == "Succeeded" then
  hs.status = "Healthy"
  local validated = conditions["Validated"]
  if validated ~= nil and validated.status == "False" then
    hs.message = "Trained; not promoted: " .. (validated.message or "a gate failed")
  end
elseif status.phase == "Failed" then
  hs.status = "Degraded"
else
  -- Pending (waiting for a Dataset version) and Running (the training Job runs).
  hs.status = "Progressing"
end
return hs
