-- Remove one toy job from a list: discard (the failed list) or cancel (its queue).
--
-- KEYS[1..3], ARGV[1..7]: shared by every script (jobbridge's lua/_prelude.lua)
-- KEYS[4]: the list (<prefix>:failed or <prefix>:queue:<queue>)
-- ARGV[8]: the entry exactly as Python read it ("" when Python found none)
-- ARGV[9]: the action ("discard" or "cancel")
-- Returns: {1, ""} removed; {0, ""} not in the list; {-1, "<entry>"} already handled
jb.action = ARGV[9]
local wrong = jb_wrong_type({{KEYS[4], 'list'}})
if wrong then return wrong end
if ARGV[8] == '' or not redis.call('LPOS', KEYS[4], ARGV[8]) then
  return jb_gone('no such job')
end
redis.call('LREM', KEYS[4], 1, ARGV[8])
local status = ARGV[9] == 'discard' and 'discarded' or 'canceled'
return jb_done(status, '', ARGV[8], status)
