-- Compare-and-set of one node record with its outbox event.
-- KEYS: 1 node key, 2 outbox, 3 leader epoch key, 4 nodes index, 5 node event log, 6 heartbeat index,
--       7 node change stream
-- ARGV: 1 expected rev ('0' = must not exist), 2 allowed from-states ("A,B"; '*' = any), 3 new state,
--       4 node JSON, 5 epoch ('' = unfenced), 6 event subject ('' = none), 7 event id, 8 event bytes,
--       9 node name, 10 heartbeat ms ('' = keep), 11 agent instance id ('' = keep),
--       12 event-log entry ('' = none), 13 event-log cap,
--       14 when the agent instance in 11 started, ms (kept with it; '' = unknown)
-- Returns: {'OK', newRev} | {'FENCED'} | {'STALE', rev, state}
if ARGV[5] ~= '' then
  if redis.call('GET', KEYS[3]) ~= ARGV[5] then
    return {'FENCED'}
  end
end
local cur = redis.call('HMGET', KEYS[1], 'state', 'rev')
local state, rev = cur[1] or '', cur[2] or '0'
if rev ~= ARGV[1] then
  return {'STALE', rev, state}
end
if ARGV[2] ~= '*' and state ~= '' then
  local allowed = false
  for s in string.gmatch(ARGV[2], '[^,]+') do
    if s == state then allowed = true end
  end
  if not allowed then
    return {'STALE', rev, state}
  end
end
local newRev = tonumber(rev) + 1
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'rev', newRev, 'node', ARGV[4])
if ARGV[10] ~= '' then
  redis.call('HSET', KEYS[1], 'hb', ARGV[10])
  redis.call('ZADD', KEYS[6], ARGV[10], ARGV[9])
end
if ARGV[11] ~= '' then
  -- A new agent process: the one it replaces stays believed for what it stamped before the
  -- new one started (its buffered reports), so both are kept in the same step.
  local was = redis.call('HGET', KEYS[1], 'instance')
  if was ~= ARGV[11] then
    redis.call('HSET', KEYS[1], 'prevInstance', was or '', 'instanceSince', ARGV[14] or '')
  end
  redis.call('HSET', KEYS[1], 'instance', ARGV[11])
end
redis.call('ZADD', KEYS[4], 0, ARGV[9])
redis.call('XADD', KEYS[7], 'MAXLEN', '~', 100000, '*', 'node', ARGV[9])
if ARGV[6] ~= '' then
  redis.call('XADD', KEYS[2], '*', 'subject', ARGV[6], 'id', ARGV[7], 'data', ARGV[8])
end
if ARGV[12] ~= '' then
  redis.call('LPUSH', KEYS[5], ARGV[12])
  redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[13]) - 1)
end
return {'OK', tostring(newRev)}
