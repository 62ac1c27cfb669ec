-- Several nodes read in one call (NodeStore.getMany: every heartbeat batch, LOST detection):
-- KEYS[i] is node i's hash and KEYS[n + i] its GPU allocations. ARGV[1] = '1' adds the record's
-- JSON. One script call instead of two commands per node: the client's cost per command (its
-- objects, encoding and reply parsing) was most of a heartbeat's. Read only.
local n = #KEYS / 2
local withJson = ARGV[1] == '1'
local out = {}
for i = 1, n do
  local fields
  if withJson then
    fields = redis.call('HMGET', KEYS[i], 'rev', 'hb', 'instance', 'prevInstance', 'instanceSince', 'node')
  else
    fields = redis.call('HMGET', KEYS[i], 'rev', 'hb', 'instance', 'prevInstance', 'instanceSince')
  end
  out[i] = { fields, redis.call('HGETALL', KEYS[n + i]) }
end
return out
