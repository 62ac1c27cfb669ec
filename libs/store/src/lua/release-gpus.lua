-- Releases GPU allocations whose holder is still the given owner (leader only), and the
-- rendezvous ports that owner holds on the same node: a port belongs to node rank 0's
-- process and goes when its GPUs go.
-- KEYS: 1 leader epoch key, 2 node change stream, then per release: the node's alloc key, the
--       node's ports key
-- ARGV: 1 epoch, then (gpu, owner) per release, then the releases' distinct node names (each
--       gets an entry in the node change stream)
-- Returns the number of GPUs released, or -1 when fenced.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local n = 0
local portsDone = {}
local i = 3
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
local changed = {}
for j = a, #ARGV do
  table.insert(changed, 'node')
  table.insert(changed, ARGV[j])
end
if #changed > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', 100000, '*', unpack(changed))
end
return n
