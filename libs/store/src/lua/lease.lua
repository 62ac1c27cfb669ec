-- Acquire or renew the scheduler leader lease; a new holder gets a new, larger fencing epoch.
-- KEYS: 1 leader key, 2 leader epoch key, 3 epoch counter
-- ARGV: 1 instance id, 2 ttl ms, 3 the epoch this instance last held (0: none)
-- Returns the epoch held by this instance, or 0 when another instance holds the lease.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return tonumber(redis.call('GET', KEYS[2]))
end
if holder then
  return 0
end
-- The lease lapsed while its holder was busy (its renewal came late) and nobody led since: the
-- counter still stands at the epoch it held (every other acquisition, and every floor raised
-- above it, moves the counter), so it takes the lease back with that epoch. Fencing is as
-- before, since no write under another epoch can have happened; the leader goes on instead of
-- stopping all its work and starting it again.
local last = tonumber(ARGV[3])
if last and last > 0 and tonumber(redis.call('GET', KEYS[3]) or '0') == last and tonumber(redis.call('GET', KEYS[2]) or '0') == last then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
  return last
end
local epoch = redis.call('INCR', KEYS[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
redis.call('SET', KEYS[2], epoch)
return epoch
