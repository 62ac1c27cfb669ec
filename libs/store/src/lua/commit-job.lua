-- Compare-and-set of one job, with its GPU and rendezvous port claims and releases and its
-- outbox event, atomically.
-- KEYS: 1 job key, 2 outbox, 3 leader epoch key, 4 jobs:state:{from}, 5 jobs:state:{to},
--       6 jobs:tenant:{tenant}:state:{from}, 7 jobs:tenant:{tenant}:state:{to}, 8 jobs:changes,
--       9 the job's attempts archive, 10 the node change stream, then per release: the node's
--       alloc key and ports key; per claim group: the node's alloc key and node key; per port
--       claim: the node's ports key
-- ARGV: 1 expected rev, 2 allowed from-states ("A,B"), 3 new state, 4 job JSON, 5 epoch ('' = unfenced),
--       6 event subject ('' = no event), 7 event id, 8 event bytes, 9 job id,
--       10 number of releases R, 11 number of claim groups C, 12 number of port claims P,
--       13 number of archived attempts D, 14 the archive's cap, 15 the job's creation time
--       (ms, the score of its index entries; '' = as the record's hash holds it), 16 number of
--       nodes N whose allocations the releases and claims change,
--       then R x (gpu, owner), then C x (owner, GPUs "0,1,..."), then P x (port, owner),
--       then D x attempt JSON (oldest first), then the N node names (one node change stream
--       entry lists them: readers of the nodes re-read only those)
-- The D attempts are the ones this write compacts out of the record: they are appended to the
-- archive in the same write, so a reader sees each dropped attempt in exactly one of the two
-- (the archive keeps its newest `cap`).
-- A claim group is one owner's GPUs on one node (a rank's): its keys and the node's state
-- travel and are checked once, not once per GPU.
-- A release also frees the ports its owner holds on that node (a port is claimed by node rank
-- 0's owner and lives as long as that rank's GPUs).
-- Returns: {'OK', newRev} | {'FENCED'} | {'STALE', rev, state} | {'CONFLICT', node alloc key, gpu, holder}
--        | {'NODE_NOT_READY', node key, state} | {'PORT_CONFLICT', node ports key, port, holder}
-- The commit is a function of where its keys and arguments start (kb, ab: how many come before
-- them), so that commit-jobs.lua runs it for several jobs in one call; alone, nothing comes before.
local function commitJob(kb, ab)
  if ARGV[ab + 5] ~= '' then
    local epoch = redis.call('GET', KEYS[kb + 3])
    if epoch ~= ARGV[ab + 5] then
      return {'FENCED'}
    end
  end
  local cur = redis.call('HMGET', KEYS[kb + 1], 'state', 'rev')
  local state, rev = cur[1], cur[2]
  if not state then
    return {'STALE', '0', ''}
  end
  if rev ~= ARGV[ab + 1] then
    return {'STALE', rev, state}
  end
  local allowed = false
  for s in string.gmatch(ARGV[ab + 2], '[^,]+') do
    if s == state then allowed = true end
  end
  if not allowed then
    return {'STALE', rev, state}
  end
  local releases = tonumber(ARGV[ab + 10])
  local claims = tonumber(ARGV[ab + 11])
  local portClaims = tonumber(ARGV[ab + 12])
  local archived = tonumber(ARGV[ab + 13])
  local k = kb + 11
  local a = ab + 17
  local releaseList = {}
  for i = 1, releases do
    table.insert(releaseList, {KEYS[k], ARGV[a], ARGV[a + 1], KEYS[k + 1]})
    k = k + 2
    a = a + 2
  end
  local claimList = {}
  for i = 1, claims do
    local allocKey, nodeKey, owner = KEYS[k], KEYS[k + 1], ARGV[a]
    -- A group's GPUs are read, and later written, in one command each: a command from Lua
    -- costs Redis about as much again as its work, and an 8-GPU rank made sixteen.
    local gpus, fields = {}, {}
    for gpu in string.gmatch(ARGV[a + 1], '[^,]+') do
      table.insert(gpus, gpu)
      table.insert(fields, gpu)
      table.insert(fields, owner)
    end
    local holders = redis.call('HMGET', allocKey, unpack(gpus))
    for j = 1, #gpus do
      local holder = holders[j]
      if holder and holder ~= owner then
        return {'CONFLICT', allocKey, gpus[j], holder}
      end
    end
    table.insert(claimList, {allocKey, fields})
    local nodeState = redis.call('HGET', nodeKey, 'state')
    if nodeState ~= 'READY' then
      return {'NODE_NOT_READY', nodeKey, nodeState or ''}
    end
    k = k + 2
    a = a + 2
  end
  local portList = {}
  for i = 1, portClaims do
    local portsKey, port, owner = KEYS[k], ARGV[a], ARGV[a + 1]
    local holder = redis.call('HGET', portsKey, port)
    if holder and holder ~= owner then
      return {'PORT_CONFLICT', portsKey, port, holder}
    end
    table.insert(portList, {portsKey, port, owner})
    k = k + 1
    a = a + 2
  end
  local portsDone = {}
  for _, r in ipairs(releaseList) do
    if redis.call('HGET', r[1], r[2]) == r[3] then
      redis.call('HDEL', r[1], r[2])
    end
    local done = r[4] .. '|' .. r[3]
    if not portsDone[done] then
      portsDone[done] = true
      local held = redis.call('HGETALL', r[4])
      for j = 1, #held, 2 do
        if held[j + 1] == r[3] then
          redis.call('HDEL', r[4], held[j])
        end
      end
    end
  end
  for _, c in ipairs(claimList) do
    redis.call('HSET', c[1], unpack(c[2]))
  end
  for _, c in ipairs(portList) do
    redis.call('HSET', c[1], c[2], c[3])
  end
  local newRev = tonumber(rev) + 1
  redis.call('HSET', KEYS[kb + 1], 'state', ARGV[ab + 3], 'rev', newRev, 'job', ARGV[ab + 4])
  redis.call('XADD', KEYS[kb + 8], 'MAXLEN', '~', 100000, '*', 'job', ARGV[ab + 9])
  if archived > 0 then
    -- The port claims' loop left a at the first archived attempt.
    redis.call('RPUSH', KEYS[kb + 9], unpack(ARGV, a, a + archived - 1))
    redis.call('LTRIM', KEYS[kb + 9], -tonumber(ARGV[ab + 14]), -1)
  end
  local changedNodes = tonumber(ARGV[ab + 16])
  if changedNodes > 0 then
    local entry = {}
    for j = a + archived, a + archived + changedNodes - 1 do
      table.insert(entry, 'node')
      table.insert(entry, ARGV[j])
    end
    redis.call('XADD', KEYS[kb + 10], 'MAXLEN', '~', 100000, '*', unpack(entry))
  end
  if ARGV[ab + 3] ~= state then
    local created = ARGV[ab + 15]
    if created == '' then
      created = redis.call('HGET', KEYS[kb + 1], 'created')
    end
    redis.call('ZREM', KEYS[kb + 4], ARGV[ab + 9])
    redis.call('ZADD', KEYS[kb + 5], created, ARGV[ab + 9])
    redis.call('ZREM', KEYS[kb + 6], ARGV[ab + 9])
    redis.call('ZADD', KEYS[kb + 7], created, ARGV[ab + 9])
  end
  if ARGV[ab + 6] ~= '' then
    redis.call('XADD', KEYS[kb + 2], '*', 'subject', ARGV[ab + 6], 'id', ARGV[ab + 7], 'data', ARGV[ab + 8])
  end
  return {'OK', tostring(newRev)}
end

return commitJob(0, 0)
