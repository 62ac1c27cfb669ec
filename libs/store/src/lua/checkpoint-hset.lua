-- Sets fields of one of a job's checkpoint hashes (its settings, its placement). When the job
-- has finished already, the hash gets the time its other records have left: a hash first
-- written after the final transition must not outlive them.
-- KEYS: 1 the hash, 2 the job's finished marker
-- ARGV: field, value, ...
-- Returns: the number of new fields
local n = redis.call('HSET', KEYS[1], unpack(ARGV))
local left = redis.call('PTTL', KEYS[2])
if left > 0 then
  redis.call('PEXPIRE', KEYS[1], left)
end
return n
