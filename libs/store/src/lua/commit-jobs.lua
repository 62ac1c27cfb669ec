-- Several jobs' commits in one script call: commit-job.lua's commitJob (this text is put in
-- place of that script's last line when it is loaded) run for each in turn, on its own keys and
-- arguments, and answered on its own: one that fails (stale, a conflict, fenced, or an error)
-- does not stop the others, and writes nothing more than it would have alone. One call
-- instead of one per job saves the client and Redis the work of a command per job; the
-- caller keeps a call to a few dozen jobs, so that none holds Redis for long.
-- KEYS: the commits' keys, one after another.
-- ARGV: 1 "keys1,args1,keys2,args2,..." (how many keys and arguments each commit has), then
--       the commits' arguments, one after another.
-- Returns: one reply per commit, in order: commit-job.lua's, or {'ERR', message} for one that
--          raised an error.
local replies = {}
local kb, ab = 0, 1
local sizes = {}
for n in string.gmatch(ARGV[1], '%d+') do
  table.insert(sizes, tonumber(n))
end
for i = 1, #sizes, 2 do
  local ok, reply = pcall(commitJob, kb, ab)
  if ok then
    table.insert(replies, reply)
  else
    table.insert(replies, {'ERR', type(reply) == 'table' and (reply.err or reply.msg) or tostring(reply)})
  end
  kb = kb + sizes[i]
  ab = ab + sizes[i + 1]
end
return replies
