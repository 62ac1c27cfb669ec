-- Releases GPU allocations whose holder is still the given owner (leader only), and the
-- rendezvous ports that owner holds on the same node: a port belongs to node rank 0's
-- process and goes when its GPUs go.
-- KEYS: 1 leader epoch key, then per release: the node's alloc key, the node's ports key
-- ARGV: 1 epoch, then (gpu, owner) per release
-- Returns the number of GPUs released, or -1 when fenced.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local n = 0
local portsDone = {}
local i = 2
local a = 2
while i < #KEYS do
  local allocKey, portsKey, gpu, owner = KEYS[i], KEYS[i + 1], ARGV[a], ARGV[a + 1]
  if redis.call('HGET', allocKey, gpu) == owner then
    redis.call('HDEL', allocKey, gpu)
    n = n + 1
  end
  local done = portsKey .. '|' .. owner
  if not portsDone[done] then
    portsDone[done] = true
    local held = redis.call('HGETALL', portsKey)
    for j = 1, #held, 2 do
      if held[j + 1] == owner then
        redis.call('HDEL', portsKey, held[j])
      end
    end
  end
  i = i + 2
  a = a + 2
end
return n
