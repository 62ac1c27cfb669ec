-- The waiters that may take a lease now (storage-pool.lua's grantable), after dropping expired
-- leases and waiters that stopped asking. The service wakes exactly these after a release.
-- KEYS: as storage-pool.lua. ARGV: 1 now ms (0: Redis TIME), 2 waiter ttl ms, 3 limit when the
-- pool has none yet, 4 leases per node (0: no cap). Returns their ids in queue order.
local now = tonumber(ARGV[1])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
sweep(now, tonumber(ARGV[2]))
local limit = tonumber(redis.call('HGET', KEYS[6], 'limit')) or tonumber(ARGV[3])
return grantable(limit, tonumber(ARGV[4]))
