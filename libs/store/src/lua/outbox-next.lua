-- The relay's one round trip per pass: marks the entries up to ARGV[1] relayed (cursor set,
-- entries before it trimmed; '' = nothing to mark), then returns up to ARGV[2] entries after
-- the cursor, oldest first.
-- KEYS: 1 outbox cursor, 2 outbox stream
if ARGV[1] ~= '' then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('XTRIM', KEYS[2], 'MINID', ARGV[1])
end
local cursor = redis.call('GET', KEYS[1]) or '0-0'
return redis.call('XRANGE', KEYS[2], '(' .. cursor, '+', 'COUNT', tonumber(ARGV[2]))
