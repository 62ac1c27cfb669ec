-- The revision of each job hash in KEYS (false: no such job), in one call instead of a command
-- per job (JobStore.revisions: the job copies check theirs on every heartbeat batch). Read only.
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('HGET', KEYS[i], 'rev')
end
return out
