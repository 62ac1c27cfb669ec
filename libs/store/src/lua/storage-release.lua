-- Give a storage lease back, or leave the waiter queue.
-- KEYS: as storage-pool.lua. ARGV: 1 lease id
-- Returns 1 when a lease or a place in the queue was given up, 0 when there was none.
local n = redis.call('ZREM', KEYS[1], ARGV[1]) + redis.call('ZREM', KEYS[3], ARGV[1])
dropLease(ARGV[1])
dropWaiter(ARGV[1])
if n > 0 then return 1 end
return 0
