-- Send Celery's revoke broadcast for one task (with terminate for a running one): workers
-- online now add the id to their revoked set, discard the task if they hold it, and kill it
-- when told to terminate. A request, not a state change: it is audited, and refused when no
-- worker listens on the remote-control channel (PUBLISH reaches nobody).
--
-- A worker that hears it stores a REVOKED result without the task's name, arguments or queue
-- (it does not look the task up), unless the task is started or finished. So, when the
-- result backend is this database, the same REVOKED result with those fields is written here
-- first, under the worker's own rule (only over no result, PENDING, RECEIVED, RETRY or
-- REJECTED: re-checked here, the state may have moved since Python read it); the worker then
-- finds a ready state and leaves it.
--
-- KEYS[1..3], ARGV[1..7]: shared by every script (lua/_prelude.lua)
-- KEYS[4]: the task's result key, celery-task-meta-<id>
-- ARGV[8]: Python's verdict: "" to act; else a refusal word ("finished", "not running",
--          "gone"), audited and returned
-- ARGV[9]: the pidbox channel Celery's remote control listens on
-- ARGV[10]: the revoke broadcast (a kombu envelope)
-- ARGV[11]: "revoke" or "terminate", the action's name in the audit
-- ARGV[12]: the REVOKED result meta (Celery's JSON, result_extended fields included) to
--           write here; "" to write none (Python writes it to another backend, or none)
-- ARGV[13]: its expiry, seconds (Celery's result_expires)
-- Returns: {code, detail}
--   { 1, "<n> listening connection(s)"}   sent
--   { 0, ""}                               unknown task
--   {-1, "<word>"}                         refused by Python's check, or "no listener"
--   {-5, key, type, expected}              KEYS[n] holds another type: nothing was sent
jb.action = ARGV[11]

-- KEYS[4] is written only with a meta to store (ARGV[12]); a result key of another type is
-- refused either way, so a revoke never goes out for a task whose result is not Celery's.
local wrong = jb_wrong_type({{KEYS[4], 'string'}})
if wrong then return wrong end

if ARGV[8] == 'gone' then
  return jb_gone('no such task')
end
if ARGV[8] ~= '' then
  return jb_refuse(-1, ARGV[8], 'wrong_state', ARGV[8])
end

local store = false
if ARGV[12] ~= '' then
  local kind = redis.call('TYPE', KEYS[4])['ok']
  if kind == 'none' then
    store = true
  elseif kind == 'string' then
    local status = string.match(redis.call('GETRANGE', KEYS[4], 0, 255), '"status":%s*"(%u+)"')
    store = status == nil or status == 'PENDING' or status == 'RECEIVED' or status == 'RETRY'
      or status == 'REJECTED'
  end
end

local heard = redis.call('PUBLISH', ARGV[9], ARGV[10])
if heard == 0 then
  return jb_refuse(-1, 'no listener', 'wrong_state', 'no worker listens for remote control')
end
if store then
  redis.call('SET', KEYS[4], ARGV[12], 'EX', tonumber(ARGV[13]))
  redis.call('PUBLISH', KEYS[4], ARGV[12])
end
return jb_done('', '', '', 'sent to ' .. heard .. ' connection(s)', heard .. ' listening connection(s)')
