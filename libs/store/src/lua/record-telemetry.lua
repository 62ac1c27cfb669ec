-- Stores a node's newest telemetry batch and moves the one it replaces into the capped history,
-- in one round trip (this runs for every batch of every node).
-- KEYS: 1 latest key, 2 history list; ARGV: 1 batch bytes, 2 history cap
local prev = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1])
if prev then
  redis.call('LPUSH', KEYS[2], prev)
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
end
return 1
