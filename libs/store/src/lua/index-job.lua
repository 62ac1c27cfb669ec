-- Adds one job written before the tenant indexes existed to them, reading its tenant, state
-- and creation time in the same step, so a transition committed meanwhile cannot leave it in
-- the wrong state's set.
-- KEYS: 1 job key
-- ARGV: 1 job id, 2 key prefix ('gantry')
-- Returns: 1 indexed | 0 the job no longer exists
local cur = redis.call('HMGET', KEYS[1], 'state', 'tenant', 'created')
local state, tenant, created = cur[1], cur[2] or '', cur[3]
if not state or not created then
  return 0
end
redis.call('ZADD', ARGV[2] .. ':jobs:tenant:' .. tenant, created, ARGV[1])
redis.call('ZADD', ARGV[2] .. ':jobs:tenant:' .. tenant .. ':state:' .. state, created, ARGV[1])
return 1
