-- Give a storage lease back, or leave the waiter queue.
-- KEYS: 1 leases, 2 holders, 3 waiters, 4 waiter last-seen, 5 waiter info
-- ARGV: 1 lease id
-- Returns 1 when a lease or a place in the queue was given up, 0 when there was none.
local n = redis.call('ZREM', KEYS[1], ARGV[1]) + redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
if n > 0 then return 1 end
return 0
