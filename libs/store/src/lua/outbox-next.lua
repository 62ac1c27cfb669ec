-- The relay's one round trip per pass: marks the entries up to ARGV[1] relayed (cursor set,
-- entries before it trimmed; '' = nothing to mark), then returns up to ARGV[2] entries after
-- the cursor, oldest first.
-- KEYS: 1 outbox cursor, 2 outbox stream
-- The cursor only moves forward: a relay that led before and marks an older entry (its pass
-- was in flight when another scheduler took over and relayed further) must not make the
-- entries after it go out again.
local function after(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  ams, aseq, bms, bseq = tonumber(ams), tonumber(aseq), tonumber(bms), tonumber(bseq)
  return ams > bms or (ams == bms and aseq > bseq)
end
if ARGV[1] ~= '' and after(ARGV[1], redis.call('GET', KEYS[1]) or '0-0') then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('XTRIM', KEYS[2], 'MINID', ARGV[1])
end
local cursor = redis.call('GET', KEYS[1]) or '0-0'
return redis.call('XRANGE', KEYS[2], '(' .. cursor, '+', 'COUNT', tonumber(ARGV[2]))
