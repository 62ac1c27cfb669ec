-- Acquire (or renew) a storage lease from a bounded pool, FIFO across everyone who asked, with
-- at most `perNode` leases per node. KEYS: as storage-pool.lua.
-- ARGV: 1 lease id "{w|r}:{job}:{attempt}:{rank}", 2 holder JSON, 3 now ms (0: Redis TIME),
--       4 ttl ms, 5 waiter ttl ms (a waiter that stops asking for this long loses its place),
--       6 job id, 7 attempt, 8 limit when the pool has none yet, 9 leases per node (0: no
--       cap), 10 the holder's node ('' when it named none)
-- Returns {granted 0|1, queue position, limit, leases held after this call, expiry ms, now ms}.
-- The pool never holds more than `limit` leases, nor more than `perNode` on one node: a lease is
-- granted only to a holder among the first free-slot-many waiters that grantable() lets through.
local id = ARGV[1]
local now = tonumber(ARGV[3])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local ttl = tonumber(ARGV[4])
local waiterTtl = tonumber(ARGV[5])
local perNode = tonumber(ARGV[9])
local node = ARGV[10]

sweep(now, waiterTtl)

local limit = tonumber(redis.call('HGET', KEYS[6], 'limit'))
if limit == nil then
  limit = tonumber(ARGV[8])
  redis.call('HSET', KEYS[6], 'limit', limit)
end

-- Already held: a renewal.
if redis.call('ZSCORE', KEYS[1], id) then
  redis.call('ZADD', KEYS[1], now + ttl, id)
  return {1, 0, limit, redis.call('ZCARD', KEYS[1]), now + ttl, now}
end

if not redis.call('ZSCORE', KEYS[3], id) then
  -- First ask of this holder: a newer attempt of a job means its older attempts are dead.
  local job = ARGV[6]
  local attempt = tonumber(ARGV[7])
  local function older(other)
    local j, a = string.match(other, '^[wr]:(.+):(%d+):%d+$')
    return j == job and tonumber(a) < attempt
  end
  for _, lid in ipairs(redis.call('HKEYS', KEYS[2])) do
    if older(lid) then dropLease(lid) end
  end
  for _, wid in ipairs(redis.call('HKEYS', KEYS[5])) do
    if older(wid) then dropWaiter(wid) end
  end
  local ticket = redis.call('HINCRBY', KEYS[6], 'seq', 1)
  redis.call('ZADD', KEYS[3], ticket, id)
  redis.call('HSET', KEYS[5], id, ARGV[2])
  if node ~= '' then redis.call('HSET', KEYS[7], id, node) end
end
redis.call('ZADD', KEYS[4], now, id)

local held = redis.call('ZCARD', KEYS[1])
local next = grantable(limit, perNode, id)
if next[#next] == id then
  dropWaiter(id, true)
  redis.call('ZADD', KEYS[1], now + ttl, id)
  redis.call('HSET', KEYS[2], id, ARGV[2])
  return {1, 0, limit, held + 1, now + ttl, now}
end
return {0, redis.call('ZRANK', KEYS[3], id), limit, held, 0, now}
