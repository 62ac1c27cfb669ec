-- Gives up on a WRITING checkpoint (its attempt died, or its writer said so), so it is never
-- committed or offered for resume. Abandoning twice is a no-op; a committed one cannot be.
-- KEYS: 1 checkpoint key
-- ARGV: 1 abandoned ms, 2 reason
-- Returns: {'ABANDONED', hash...} (this call) | {'ALREADY', hash...} | {'MISSING'} | {'STATE', state}
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return {'MISSING'}
end
if state == 'ABANDONED' then
  local reply = redis.call('HGETALL', KEYS[1])
  table.insert(reply, 1, 'ALREADY')
  return reply
end
if state ~= 'WRITING' then
  return {'STATE', state}
end
redis.call('HSET', KEYS[1], 'state', 'ABANDONED', 'abandoned', ARGV[1], 'reason', ARGV[2])
local reply = redis.call('HGETALL', KEYS[1])
table.insert(reply, 1, 'ABANDONED')
return reply
