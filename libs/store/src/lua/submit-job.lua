-- Creates a PENDING job unless the idempotency key already names one.
-- KEYS: 1 idem key ('' = none), 2 job key, 3 jobs:all, 4 jobs:state:PENDING, 5 outbox,
--       6 jobs:tenant:{tenant}, 7 jobs:tenant:{tenant}:state:PENDING, 8 jobs:changes
-- ARGV: 1 job id, 2 job JSON, 3 created ms, 4 tenant, 5 event subject, 6 event id, 7 event bytes, 8 idem ttl seconds,
--       9 hash of the spec
-- The idem key holds "{job id} {spec hash}" (a bare job id when written before hashes were kept).
-- Returns: {1, job id} created | {0, existing job id} same key, same spec | {2, existing job id} same key, another spec
if KEYS[1] ~= '' then
  local existing = redis.call('GET', KEYS[1])
  if existing then
    local id, hash = string.match(existing, '^(%S+) (%S+)$')
    if not id then
      return {0, existing}
    end
    if hash ~= ARGV[9] then
      return {2, id}
    end
    return {0, id}
  end
  redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[9], 'EX', tonumber(ARGV[8]))
end
redis.call('HSET', KEYS[2], 'state', 'PENDING', 'rev', 1, 'job', ARGV[2], 'tenant', ARGV[4], 'created', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[6], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[7], ARGV[3], ARGV[1])
redis.call('XADD', KEYS[5], '*', 'subject', ARGV[5], 'id', ARGV[6], 'data', ARGV[7])
redis.call('XADD', KEYS[8], 'MAXLEN', '~', 100000, '*', 'job', ARGV[1])
return {1, ARGV[1]}
