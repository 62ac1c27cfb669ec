-- Records the size of one shard of a WRITING checkpoint. Reporting an index again replaces its
-- value (the total is derived from the shard fields on read, so it can never drift).
-- KEYS: 1 checkpoint key
-- ARGV: 1 shard index, 2 bytes
-- Returns: {'OK', previous bytes ('' = first report), hash...} | {'MISSING'} | {'STATE', state}
--          | {'RANGE', shard count}
-- Every check comes before the only write: a script that fails halfway keeps its earlier writes.
local cur = redis.call('HMGET', KEYS[1], 'state', 'shards')
if not cur[1] then
  return {'MISSING'}
end
if cur[1] ~= 'WRITING' then
  -- A retried report whose first attempt landed before the commit is an answer, not an error.
  local field = 'shard:' .. ARGV[1]
  if cur[1] == 'COMMITTED' and redis.call('HGET', KEYS[1], field) == ARGV[2] then
    local reply = redis.call('HGETALL', KEYS[1])
    table.insert(reply, 1, ARGV[2])
    table.insert(reply, 1, 'OK')
    return reply
  end
  return {'STATE', cur[1]}
end
if tonumber(ARGV[1]) >= tonumber(cur[2]) then
  return {'RANGE', cur[2]}
end
local field = 'shard:' .. ARGV[1]
local previous = redis.call('HGET', KEYS[1], field) or ''
redis.call('HSET', KEYS[1], field, ARGV[2])
local reply = redis.call('HGETALL', KEYS[1])
table.insert(reply, 1, previous)
table.insert(reply, 1, 'OK')
return reply
