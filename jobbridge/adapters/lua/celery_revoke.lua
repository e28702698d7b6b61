-- Send Celery's revoke broadcast for one task (with terminate for a running one): workers
-- online now add the id to their revoked set, discard the task if they hold it, and kill it
-- when told to terminate. A request, not a state change: it is audited, and refused when no
-- worker listens on the remote-control channel (PUBLISH reaches nobody).
--
-- KEYS[1..3], ARGV[1..7]: shared by every script (lua/_prelude.lua)
-- ARGV[8]: Python's verdict: "" to act; else a refusal word ("finished", "not running",
--          "gone"), audited and returned
-- ARGV[9]: the pidbox channel Celery's remote control listens on
-- ARGV[10]: the revoke broadcast (a kombu envelope)
-- ARGV[11]: "revoke" or "terminate", the action's name in the audit
-- Returns: {code, detail}
--   { 1, "<n> listening connection(s)"}   sent
--   { 0, ""}                               unknown task
--   {-1, "<word>"}                         refused by Python's check, or "no listener"
--   {-5, key, type, expected}              KEYS[1..3] holds another type: nothing was sent
jb.action = ARGV[11]

local wrong = jb_wrong_type({})
if wrong then return wrong end

if ARGV[8] == 'gone' then
  return jb_gone('no such task')
end
if ARGV[8] ~= '' then
  return jb_refuse(-1, ARGV[8], 'wrong_state', ARGV[8])
end
local heard = redis.call('PUBLISH', ARGV[9], ARGV[10])
if heard == 0 then
  return jb_refuse(-1, 'no listener', 'wrong_state', 'no worker listens for remote control')
end
return jb_done('', '', '', 'sent to ' .. heard .. ' connection(s)', heard .. ' listening connection(s)')
