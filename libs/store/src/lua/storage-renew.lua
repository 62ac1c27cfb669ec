-- Extend a held storage lease.
-- KEYS: as storage-pool.lua. ARGV: 1 lease id, 2 now ms (0: Redis TIME), 3 ttl ms
-- Returns the new expiry (ms), or 0 when the lease expired or was released (it is gone then).
local now = tonumber(ARGV[2])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local expiry = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if expiry == nil or expiry <= now then
  dropLease(ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return now + tonumber(ARGV[3])
