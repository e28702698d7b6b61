-- Retry a failed toy job: out of the failed list, into its queue under a new id.
--
-- KEYS[1..3], ARGV[1..7]: shared by every script (jobbridge's lua/_prelude.lua)
-- KEYS[4]: <prefix>:failed
-- KEYS[5]: <prefix>:queue:<queue>
-- ARGV[8]: the failed entry exactly as Python read it ("" when Python found none)
-- ARGV[9]: the new job (JSON)
-- ARGV[10]: the new id
-- Returns: {1, new id} retried; {0, ""} not failed; {-1, "<entry>"} already handled
jb.action = 'retry'
local wrong = jb_wrong_type({{KEYS[4], 'list'}, {KEYS[5], 'list'}})
if wrong then return wrong end
if ARGV[8] == '' or not redis.call('LPOS', KEYS[4], ARGV[8]) then
  return jb_gone('no such failed job')
end
redis.call('LREM', KEYS[4], 1, ARGV[8])
redis.call('LPUSH', KEYS[5], ARGV[9])
return jb_done('retried', ARGV[10], ARGV[8], 'retried as ' .. ARGV[10], ARGV[10])
