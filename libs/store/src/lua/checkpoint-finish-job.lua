-- A job reached a final state: its checkpoint records expire after the TTL, in one round trip
-- (this runs for every job that ends, most of which never wrote a checkpoint). The marker goes
-- first: the begin/commit/observe scripts give records written after it the same expiry.
-- The WRITING checkpoints of attempts up to the one that ended are returned for the caller to
-- abandon after (HSET keeps a key's expiry).
-- KEYS: 1 finished marker, 2 the job's checkpoint index (zset), 3 events, 4 meta, 5 placement,
--       6 the last-commit hash
-- ARGV: 1 TTL seconds, 2 checkpoint key prefix, 3 the attempt that ended, 4 job id
-- Returns: {expired count, writing id...}
local ttl = ARGV[1]
redis.call('SET', KEYS[1], ttl, 'EX', ttl)
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
local reply = {#ids}
for _, id in ipairs(ids) do
  local key = ARGV[2] .. id
  local f = redis.call('HMGET', key, 'state', 'attempt')
  if f[1] == 'WRITING' and tonumber(f[2] or '0') <= tonumber(ARGV[3]) then
    table.insert(reply, id)
  end
  redis.call('EXPIRE', key, ttl)
end
for i = 2, 5 do
  redis.call('EXPIRE', KEYS[i], ttl)
end
redis.call('HDEL', KEYS[6], ARGV[4])
return reply
