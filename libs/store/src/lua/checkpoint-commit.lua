-- Marks a checkpoint COMMITTED, only if every shard index 0..shards-1 has been reported. The
-- completeness check and the state change are one script, so no crash or concurrent report can
-- leave an incomplete checkpoint looking committed.
-- KEYS: 1 checkpoint key, 2 per-job last-commit hash (job id -> ms of its newest commit),
--       3 the job's finished marker (present, with a TTL, once the job finished: a commit
--       after that keeps the record's expiry and does not put the job back into KEYS[2])
-- ARGV: 1 committed ms, 2 how many missing indices to list at most
-- Returns: {'COMMITTED', hash...} (this call committed) | {'ALREADY', hash...} | {'MISSING'}
--          | {'STATE', state} | {'INCOMPLETE', shard count, reported, missing index...}
local cur = redis.call('HMGET', KEYS[1], 'state', 'shards')
if not cur[1] then
  return {'MISSING'}
end
if cur[1] == 'COMMITTED' then
  local reply = redis.call('HGETALL', KEYS[1])
  table.insert(reply, 1, 'ALREADY')
  return reply
end
if cur[1] ~= 'WRITING' then
  return {'STATE', cur[1]}
end
local count = tonumber(cur[2])
local limit = tonumber(ARGV[2])
local missing = {}
local nMissing = 0
for i = 0, count - 1 do
  if redis.call('HEXISTS', KEYS[1], 'shard:' .. i) == 0 then
    nMissing = nMissing + 1
    if nMissing <= limit then
      table.insert(missing, tostring(i))
    end
  end
end
if nMissing > 0 then
  return {'INCOMPLETE', cur[2], tostring(count - nMissing), unpack(missing)}
end
redis.call('HSET', KEYS[1], 'state', 'COMMITTED', 'committed', ARGV[1])
-- One field per job so the scheduler reads every job's last commit time in one command.
local job = redis.call('HGET', KEYS[1], 'job')
local left = redis.call('PTTL', KEYS[3])
if left > 0 then
  redis.call('PEXPIRE', KEYS[1], left)
else
  local prev = tonumber(redis.call('HGET', KEYS[2], job) or '0')
  if tonumber(ARGV[1]) > prev then
    redis.call('HSET', KEYS[2], job, ARGV[1])
  end
end
local reply = redis.call('HGETALL', KEYS[1])
table.insert(reply, 1, 'COMMITTED')
return reply
