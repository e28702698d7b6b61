-- Cancel a Celery task whose message still waits in a broker list: remove that exact message,
-- so that no worker ever receives it, then tell everyone as Celery itself would: a REVOKED
-- result (written and published as the result backend does, when the backend is this same
-- Redis database; otherwise Python writes it after this script), and Celery's revoke
-- broadcast for the id, so that a worker holding a copy (a restored duplicate) discards it.
-- The LREM is the state check: a worker takes a message by popping it, so either this
-- removal wins and the task never runs, or a worker won and nothing here changes.
--
-- KEYS[1..3], ARGV[1..7]: shared by every script (lua/_prelude.lua); KEYS[3] is the lifecycle
--          key of the task's waiting messages (…:lifecycle#waiting:<id>), not of its result
-- KEYS[4]: the broker list Python found the message in (queue and priority step)
-- KEYS[5]: the task's result key, celery-task-meta-<id> (written only when ARGV[10] is "1")
-- ARGV[8]: Python's verdict: "" to act; else why not ("gone": not found anywhere; "taken":
--          a worker holds or ran it), audited and returned as the refusal
-- ARGV[9]: the exact message bytes, as Python read them from KEYS[4]
-- ARGV[10]: "1" to write and publish the REVOKED result here, "0" when Python does it
-- ARGV[11]: the REVOKED result meta (Celery's JSON)
-- ARGV[12]: its expiry, seconds (Celery's result_expires)
-- ARGV[13]: the pidbox channel Celery's remote control listens on
-- ARGV[14]: Celery's revoke broadcast for the id (a kombu envelope); "" for a message
--           without a task id (nothing to revoke)
-- ARGV[15]: the lifecycle copy of the task (JSON of its summary)
-- Returns: {code, detail}
--   { 1, ""}           canceled
--   { 0, ""}           no such waiting message
--   {-1, "<entry>"}    already canceled / retried / discarded by an operator (lifecycle JSON)
--   {-1, "taken"}      a worker took it (it holds it or ran it)
--   {-4, ""}           the message left KEYS[4] since Python read it: search again
--   {-5, key, type, expected}  KEYS[n] holds another type: nothing was changed (jb_wrong_type)
jb.action = 'cancel'

-- KEYS[4] and KEYS[5] are placeholders unless the script is to act (ARGV[8] "").
local checks = {}
if ARGV[8] == '' then
  checks[1] = {KEYS[4], 'list'}
  if ARGV[10] == '1' then checks[2] = {KEYS[5], 'string'} end
end
local wrong = jb_wrong_type(checks)
if wrong then return wrong end

-- No up-front look at KEYS[3]: the LREM of these exact bytes decides. A cancel of another
-- message carrying the same id, or a discard of the task's failed run, must not block this.
-- Once the message is not there, an earlier cancel of a message of this id explains it.
if ARGV[8] == 'gone' or (ARGV[8] ~= '' and redis.call('EXISTS', KEYS[3]) == 1) then
  return jb_gone('no such waiting message')
end
if ARGV[8] ~= '' then
  return jb_refuse(-1, ARGV[8], 'wrong_state', 'already taken by a worker')
end

if redis.call('LREM', KEYS[4], 1, ARGV[9]) == 0 then
  return {-4, ''}
end
if ARGV[10] == '1' then
  redis.call('SET', KEYS[5], ARGV[11], 'EX', tonumber(ARGV[12]))
  redis.call('PUBLISH', KEYS[5], ARGV[11])
end
if ARGV[14] ~= '' then
  redis.call('PUBLISH', ARGV[13], ARGV[14])
end
return jb_done('canceled', '', ARGV[15], 'canceled')
