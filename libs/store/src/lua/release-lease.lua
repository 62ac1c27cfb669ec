-- Give the lease up on graceful shutdown so a standby takes over at once.
-- KEYS: 1 leader key; ARGV: 1 instance id
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
