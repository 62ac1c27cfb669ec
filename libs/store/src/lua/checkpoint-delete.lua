-- Marks a checkpoint DELETED after its agent removed the directory (retention), and records
-- the deletion as an event. Deleting twice is a no-op.
-- KEYS: 1 checkpoint key, 2 job event list, 3 the job's finished marker (when present, the
--       event list, which may be new, expires with the job's other records)
-- ARGV: 1 now ms, 2 reason, 3 event cap
-- Returns: {'DELETED', hash...} | {'ALREADY', hash...} | {'MISSING'}
local cur = redis.call('HMGET', KEYS[1], 'state', 'id', 'job', 'path')
if not cur[1] then
  return {'MISSING'}
end
local verdict = 'ALREADY'
if cur[1] ~= 'DELETED' then
  verdict = 'DELETED'
  redis.call('HSET', KEYS[1], 'state', 'DELETED', 'since', ARGV[1], 'updated', ARGV[1], 'deleted', ARGV[1], 'reason', ARGV[2])
  local event = cjson.encode({checkpoint = cur[2], job = cur[3], kind = 'deleted', path = cur[4], message = ARGV[2], time = tonumber(ARGV[1])})
  redis.call('LPUSH', KEYS[2], event)
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
  local left = redis.call('PTTL', KEYS[3])
  if left > 0 then
    redis.call('PEXPIRE', KEYS[2], left)
  end
end
local reply = redis.call('HGETALL', KEYS[1])
table.insert(reply, 1, verdict)
return reply
