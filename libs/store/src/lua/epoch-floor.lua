-- Raises the fencing epoch counter to at least a floor an agent reported (the highest epoch it
-- has accepted): after a restore from an older backup the counter may have gone back, and
-- agents refuse every command below what they have seen. When this instance holds the lease,
-- it takes a new epoch above the floor at once.
-- KEYS: 1 epoch counter, 2 leader key, 3 leader epoch key
-- ARGV: 1 floor, 2 instance id
-- Returns the leader epoch now held by this instance (0 when it does not hold the lease).
local floor = tonumber(ARGV[1])
local counter = tonumber(redis.call('GET', KEYS[1]) or '0')
if counter < floor then
  redis.call('SET', KEYS[1], floor)
end
if redis.call('GET', KEYS[2]) ~= ARGV[2] then
  return 0
end
local held = tonumber(redis.call('GET', KEYS[3]) or '0')
if held > floor then
  return held
end
local epoch = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[3], epoch)
return epoch
