-- Heartbeats of several nodes read and recorded in one call (NodeStore.recordHeartbeats): node
-- i's record is read as node-reads.lua reads it and, when it exists and its registered agent
-- instance is the heartbeat's (or it has none), its time is set (the hash's field and the index
-- LOST detection reads). One round trip where a read and then a write took two, each waiting
-- behind whatever the scheduler's connection and event loop had queued: at 10,000 nodes most
-- of a heartbeat's lag.
-- KEYS[1] the index by time, KEYS[1 + i] node i's hash, KEYS[1 + n + i] its GPU allocations;
-- ARGV[1] the time (ms), ARGV[2] = '1' adds the record's JSON, ARGV[2 + i] the heartbeat's
-- instance, ARGV[2 + n + i] the node's name. A node may come twice (two instances).
local n = (#KEYS - 1) / 2
local withJson = ARGV[2] == '1'
local out = {}
for i = 1, n do
  local fields
  if withJson then
    fields = redis.call('HMGET', KEYS[1 + i], 'rev', 'hb', 'instance', 'prevInstance', 'instanceSince', 'node')
  else
    fields = redis.call('HMGET', KEYS[1 + i], 'rev', 'hb', 'instance', 'prevInstance', 'instanceSince')
  end
  local registered = fields[3]
  if fields[1] and (not registered or registered == '' or registered == ARGV[2 + i]) then
    redis.call('HSET', KEYS[1 + i], 'hb', ARGV[1])
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2 + n + i])
    fields[2] = ARGV[1]
  end
  out[i] = { fields, redis.call('HGETALL', KEYS[1 + n + i]) }
end
return out
