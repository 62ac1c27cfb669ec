-- Acquire or renew the scheduler leader lease; a new holder gets a new, larger fencing epoch.
-- KEYS: 1 leader key, 2 leader epoch key, 3 epoch counter
-- ARGV: 1 instance id, 2 ttl ms
-- Returns the epoch held by this instance, or 0 when another instance holds the lease.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return tonumber(redis.call('GET', KEYS[2]))
end
if holder then
  return 0
end
local epoch = redis.call('INCR', KEYS[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
redis.call('SET', KEYS[2], epoch)
return epoch
