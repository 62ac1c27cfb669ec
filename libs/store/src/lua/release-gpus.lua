-- Releases GPU allocations whose holder is still the given owner (leader only).
-- KEYS: 1 leader epoch key, then one alloc key per release
-- ARGV: 1 epoch, then (gpu, owner) per release
-- Returns the number released, or -1 when fenced.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local n = 0
for i = 2, #KEYS do
  local gpu, owner = ARGV[2 * (i - 1)], ARGV[2 * (i - 1) + 1]
  if redis.call('HGET', KEYS[i], gpu) == owner then
    redis.call('HDEL', KEYS[i], gpu)
    n = n + 1
  end
end
return n
