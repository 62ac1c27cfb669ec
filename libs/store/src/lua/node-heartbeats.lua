-- Heartbeat times of several nodes (NodeStore.heartbeats), atomically: KEYS[1] is the index
-- by time, KEYS[1 + i] node i's hash, ARGV[i] (ms) and ARGV[n + i] (name) its time and name.
-- One call instead of a command per node and the index update.
local n = #KEYS - 1
for i = 1, n do
  redis.call('HSET', KEYS[1 + i], 'hb', ARGV[i])
  redis.call('ZADD', KEYS[1], ARGV[i], ARGV[n + i])
end
return n
