-- Stores a node's newest telemetry batch and moves the one it replaces into the capped history,
-- and appends the batch's NFS WRITE sample to the node's capped series, in one round trip (this
-- runs for every batch of every node).
-- KEYS: 1 latest key, 2 history list, 3 NFS WRITE series; ARGV: 1 batch bytes, 2 history cap,
-- 3 the batch's NfsWriteSample ('' when its bytes gave none), 4 series cap
local prev = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1])
if prev then
  redis.call('LPUSH', KEYS[2], prev)
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
end
if ARGV[3] ~= '' then
  redis.call('LPUSH', KEYS[3], ARGV[3])
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[4]) - 1)
end
return 1
