-- Telemetry batches of several nodes stored in one call (the scheduler's ingest), each only when
-- it comes from the node's agent process (AgentMessageGuard.fromInstance's rule, read and
-- applied here: the registered instance, or the one before it for a batch stamped before the
-- registered one started). One script call for many batches where each took an HMGET of its
-- node's instances and then a script call of its own: the client's cost per command and the
-- second round trip were most of the ingest's CPU at 1,000 batches/s.
-- KEYS[4i-3] node i's hash, KEYS[4i-2] its latest batch, KEYS[4i-1] its history, KEYS[4i] its
-- NFS WRITE series; ARGV[1] the history cap, ARGV[2] the series cap, ARGV[4i-1] batch i's bytes,
-- ARGV[4i] its instance, ARGV[4i+1] its collection time (ms; '' when it has none), ARGV[4i+2]
-- its NfsWriteSample ('' when its bytes gave none).
-- Returns per batch 1 when stored, else the node's {instance, prevInstance, instanceSince} as
-- read (the caller counts the drop with its reason).
local cap, seriesCap = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i = 1, #KEYS / 4 do
  local node, latest, history, series = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
  local bytes, instance, stamped, sample = ARGV[4 * i - 1], ARGV[4 * i], ARGV[4 * i + 1], ARGV[4 * i + 2]
  local f = redis.call('HMGET', node, 'instance', 'prevInstance', 'instanceSince')
  local current, previous = f[1], f[2]
  local ok = false
  if current and current ~= '' and instance ~= '' then
    if instance == current then
      ok = true
    elseif instance == previous then
      local since = tonumber(f[3] or '') or 0
      ok = since > 0 and stamped ~= '' and tonumber(stamped) < since
    end
  end
  if ok then
    local prev = redis.call('GET', latest)
    redis.call('SET', latest, bytes)
    if prev then
      redis.call('LPUSH', history, prev)
      redis.call('LTRIM', history, 0, cap - 1)
    end
    if sample ~= '' then
      redis.call('LPUSH', series, sample)
      redis.call('LTRIM', series, 0, seriesCap - 1)
    end
    out[i] = 1
  else
    out[i] = f
  end
end
return out
