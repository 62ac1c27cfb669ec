-- Appends one event to a job's capped checkpoint event list. When the job has finished
-- already, the list gets the time its other records have left (it may not have existed then).
-- KEYS: 1 the job's event list, 2 the job's finished marker
-- ARGV: 1 event (JSON), 2 cap
-- Returns: the list's length
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
local left = redis.call('PTTL', KEYS[2])
if left > 0 then
  redis.call('PEXPIRE', KEYS[1], left)
end
return redis.call('LLEN', KEYS[1])
