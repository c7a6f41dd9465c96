-- Argo CD health of a BaselinrSchema (baselinr.io/v1alpha1): the same verdict as `baselinr-schema wait`.
hs = {}
local status = obj.status
local generation = obj.metadata.generation or 0
if status == nil or (status.observedGeneration or -1) < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to act on generation " .. generation
  return hs
end
local conditions = {}
if status.conditions ~= nil then
  for _, c in ipairs(status.conditions) do
    if c.observedGeneration == nil or c.observedGeneration >= generation then
      conditions[c.type] = c
    end
  end
end
local function is_true(kind)
  return conditions[kind] ~= nil and conditions[kind].status == "True"
end
local message = status.message or ""
if is_true("Ready") and status.currentVersion == obj.spec.targetVersion then
  hs.status = "Healthy"
  hs.message = message
elseif is_true("Stalled") or (status.phase == "Failed" and not is_true("Reconciling")) then
  hs.status = "Degraded"
  if conditions["Stalled"] ~= nil and conditions["Stalled"].message ~= nil and conditions["Stalled"].message ~= "" then
    message = conditions["Stalled"].message
  end
  hs.message = message
elseif status.phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = message
else
  hs.status = "Progressing"
  hs.message = message
end
return hs
