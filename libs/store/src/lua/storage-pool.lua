-- Shared by the storage pool scripts (prepended to each one when it is loaded).
-- KEYS: 1 leases (zset id -> expiry ms), 2 holders (hash id -> holder JSON), 3 waiters (zset
--       id -> ticket), 4 waiter last-seen (zset id -> ms), 5 waiter info (hash id -> holder
--       JSON), 6 pool (hash: limit, seq, controller), 7 nodes (hash id -> node, for the leases and waiters
--       whose holder named its node)

local function dropLease(lid)
  redis.call('ZREM', KEYS[1], lid)
  redis.call('HDEL', KEYS[2], lid)
  redis.call('HDEL', KEYS[7], lid)
end

local function dropWaiter(wid, keepNode)
  redis.call('ZREM', KEYS[3], wid)
  redis.call('ZREM', KEYS[4], wid)
  redis.call('HDEL', KEYS[5], wid)
  if not keepNode then redis.call('HDEL', KEYS[7], wid) end
end

-- Leases whose holder stopped renewing, waiters who stopped asking.
local function sweep(now, waiterTtl)
  for _, lid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do dropLease(lid) end
  for _, wid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now - waiterTtl)) do dropWaiter(wid) end
end

-- The node of each id (false where none), read in chunks: unpack() has a small stack.
local function nodesOf(ids)
  local out = {}
  for i = 1, #ids, 1000 do
    local chunk = {}
    for j = i, math.min(i + 999, #ids) do chunk[#chunk + 1] = ids[j] end
    local ns = redis.call('HMGET', KEYS[7], unpack(chunk))
    for j = 1, #ns do out[#out + 1] = ns[j] end
  end
  return out
end

-- The waiters that may take a lease now, in queue order, as many as there are free slots:
-- FIFO over everyone who asked, except that a waiter whose node already holds `perNode` leases
-- of this pool (counting the ones granted ahead of it here) is passed over and keeps its place.
-- perNode 0: no per-node cap (plain FIFO). A holder that named no node is never capped. Stops
-- at `stopAt` when given (an acquire needs to know only whether it is among them).
local function grantable(limit, perNode, stopAt)
  local leases = redis.call('ZRANGE', KEYS[1], 0, -1)
  local free = limit - #leases
  local out = {}
  if free <= 0 then return out end
  -- An acquire needs only the waiters up to itself.
  local last = -1
  if stopAt then last = redis.call('ZRANK', KEYS[3], stopAt) or -1 end
  local waiters = redis.call('ZRANGE', KEYS[3], 0, last)
  if perNode <= 0 then
    for i = 1, math.min(free, #waiters) do out[i] = waiters[i] end
    return out
  end
  local held = {}
  for _, n in ipairs(nodesOf(leases)) do
    if n then held[n] = (held[n] or 0) + 1 end
  end
  local wn = nodesOf(waiters)
  for i = 1, #waiters do
    local n = wn[i]
    if not n then
      out[#out + 1] = waiters[i]
    elseif (held[n] or 0) < perNode then
      out[#out + 1] = waiters[i]
      held[n] = (held[n] or 0) + 1
    end
    if #out >= free or waiters[i] == stopAt then break end
  end
  return out
end
