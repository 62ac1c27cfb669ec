-- Registers a checkpoint in WRITING, together with its entry in the job's index, or returns the
-- record an earlier begin of the same (job, step, attempt) created: retries are harmless.
-- KEYS: 1 checkpoint key, 2 the job's checkpoint index (zset, score = step), 3 the job's
--       finished marker (present, with a TTL, once the job finished: a record begun after
--       that expires with the job's others)
-- ARGV: 1 id, 2 job id, 3 attempt, 4 step, 5 path, 6 shard count, 7 created ms
-- Returns: {'CREATED', hash...} | {'EXISTS', hash...} | {'CONFLICT', hash...}
--   CONFLICT: the id exists with another path or shard count (hash is the existing record).
local cur = redis.call('HMGET', KEYS[1], 'state', 'path', 'shards')
if cur[1] then
  local verdict = 'EXISTS'
  if cur[2] ~= ARGV[5] or cur[3] ~= ARGV[6] then
    verdict = 'CONFLICT'
  end
  local reply = redis.call('HGETALL', KEYS[1])
  table.insert(reply, 1, verdict)
  return reply
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'job', ARGV[2], 'attempt', ARGV[3], 'step', ARGV[4],
  'path', ARGV[5], 'shards', ARGV[6], 'state', 'WRITING', 'created', ARGV[7])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
local left = redis.call('PTTL', KEYS[3])
if left > 0 then
  redis.call('PEXPIRE', KEYS[1], left)
  redis.call('PEXPIRE', KEYS[2], left)
end
local reply = redis.call('HGETALL', KEYS[1])
table.insert(reply, 1, 'CREATED')
return reply
