-- Records what the agent's layout check saw of one checkpoint directory (discovery, or an
-- explicit report from training code) and moves the record through its states in one step:
--   COMPLETE   new/WRITING/ABANDONED -> COMMITTED (by manifest); COMMITTED stays (manifest refreshed);
--              CORRUPT -> COMMITTED only if it was never committed (a DeepSpeed tag whose
--              `latest` came before its last shard); a committed-then-corrupt one stays CORRUPT.
--   INCOMPLETE new/WRITING -> WRITING (IN_PROGRESS), or ABANDONED when the attempt ended;
--              COMMITTED -> CORRUPT (it lost its completion marker after commit).
--   CORRUPT    anything but DELETED -> CORRUPT with the reason.
--   GONE       the directory vanished: anything but DELETED -> DELETED (removed outside Gantry).
-- Repeating a report changes nothing (the manifest is rewritten with the same values).
-- A report for a job that finished already (the agent's last pass comes after the final
-- transition) is recorded, but what it writes expires with the job's other records and its
-- commit time is not put back into the last-commit hash.
-- KEYS: 1 checkpoint key, 2 job index (zset, score = step), 3 last-commit hash, 4 job event list,
--       5 the job's finished marker (present, with a TTL, once the job finished)
-- ARGV: 1 id, 2 job, 3 attempt, 4 step, 5 path, 6 status, 7 reason, 8 files (JSON), 9 bytes,
--       10 format, 11 variant, 12 node, 13 now ms, 14 source, 15 event cap, 16 attempt ended ('1')
-- Returns: {verdict ('CHANGED'|'SAME'|'IGNORED'), previous state ('' = new), hash...}
local cur = redis.call('HMGET', KEYS[1], 'state', 'committed')
local state = cur[1]
local status = ARGV[6]
if not state and status == 'GONE' then
  return {'IGNORED', ''}
end
if state == 'DELETED' then
  local reply = redis.call('HGETALL', KEYS[1])
  table.insert(reply, 1, state)
  table.insert(reply, 1, 'IGNORED')
  return reply
end
local now = ARGV[13]
-- > 0: the job finished and its records expire in this many ms.
local left = redis.call('PTTL', KEYS[5])
if not state then
  redis.call('HSET', KEYS[1], 'id', ARGV[1], 'job', ARGV[2], 'attempt', ARGV[3], 'step', ARGV[4],
    'path', ARGV[5], 'shards', '0', 'created', now, 'source', ARGV[14])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
end
local everCommitted = cur[2] ~= false and cur[2] ~= nil
local reason = ARGV[7]
local to = state
if status == 'COMPLETE' then
  if state == 'CORRUPT' and everCommitted then
    to = 'CORRUPT'
  else
    to = 'COMMITTED'
    reason = ''
  end
elseif status == 'INCOMPLETE' then
  if not state or state == 'WRITING' then
    if ARGV[16] == '1' then
      to = 'ABANDONED'
      reason = 'attempt ' .. ARGV[3] .. ' ended before it was complete: ' .. reason
    else
      to = 'WRITING'
    end
  elseif state == 'COMMITTED' then
    to = 'CORRUPT'
    reason = 'no longer complete after commit: ' .. reason
  end
elseif status == 'CORRUPT' then
  to = 'CORRUPT'
  if state == 'COMMITTED' then
    reason = 'failed the check after commit: ' .. reason
  end
elseif status == 'GONE' then
  to = 'DELETED'
  reason = 'the directory was removed outside Gantry'
end
if status ~= 'GONE' then
  redis.call('HSET', KEYS[1], 'files', ARGV[8], 'bytes', ARGV[9], 'format', ARGV[10], 'variant', ARGV[11], 'node', ARGV[12], 'dir_seen', now)
end
redis.call('HSET', KEYS[1], 'updated', now)
local verdict = 'SAME'
if to ~= state then
  verdict = 'CHANGED'
  redis.call('HSET', KEYS[1], 'state', to, 'since', now)
  if to == 'COMMITTED' then
    redis.call('HSET', KEYS[1], 'committed', now)
    redis.call('HDEL', KEYS[1], 'reason')
    local prev = tonumber(redis.call('HGET', KEYS[3], ARGV[2]) or '0')
    if left <= 0 and tonumber(now) > prev then
      redis.call('HSET', KEYS[3], ARGV[2], now)
    end
  else
    redis.call('HSET', KEYS[1], 'reason', reason)
  end
  if to == 'ABANDONED' then
    redis.call('HSET', KEYS[1], 'abandoned', now)
  end
  local kind = string.lower(to)
  if to == 'WRITING' then kind = 'in-progress' end
  local event = cjson.encode({checkpoint = ARGV[1], job = ARGV[2], kind = kind, path = ARGV[5], message = reason, time = tonumber(now)})
  redis.call('LPUSH', KEYS[4], event)
  redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[15]) - 1)
elseif to == 'CORRUPT' or to == 'WRITING' then
  redis.call('HSET', KEYS[1], 'reason', reason)
end
if left > 0 then
  -- The index and the event list may not have existed when the job finished.
  redis.call('PEXPIRE', KEYS[1], left)
  redis.call('PEXPIRE', KEYS[2], left)
  redis.call('PEXPIRE', KEYS[4], left)
end
local reply = redis.call('HGETALL', KEYS[1])
table.insert(reply, 1, state or '')
table.insert(reply, 1, verdict)
return reply
