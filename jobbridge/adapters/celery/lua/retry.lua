-- Retry a Celery task that failed: push a new message (a new id, built and validated by Python
-- from the arguments Celery kept in its extended result) onto the task's queue, and take the
-- old id out of jobbridge's failed index, in one script. The old id's lifecycle entry is the
-- guard against a second retry: two operators retrying at once make one new task.
--
-- KEYS[1..3], ARGV[1..7]: shared by every script (lua/_prelude.lua)
-- KEYS[4]: jobbridge's index of failed tasks (sorted set of ids)
-- KEYS[5]: jobbridge's index rows (hash: id -> summary)
-- KEYS[6]: the broker list the new message goes to (its queue, priority step)
-- ARGV[8]: Python's verdict: "" to act; else a refusal word ("not extended", "expired",
--          "not failed", "corrupt", "gone"), audited and returned
-- ARGV[9]: the new message (a kombu envelope, validated)
-- ARGV[10]: the new task id
-- ARGV[11]: the lifecycle copy of the old task (JSON of its summary)
-- Returns: {code, detail}
--   { 1, "<new id>"}   retried
--   { 0, ""}           not in the failed index
--   {-1, "<entry>"}    already retried / discarded by an operator (lifecycle JSON)
--   {-1, "<word>"}     refused by Python's check (see ARGV[8])
--   {-2, ""}           its result cannot be turned into a message
--   {-5, key, type, expected}  KEYS[n] holds another type: nothing was changed (jb_wrong_type)
jb.action = 'retry'

-- KEYS[6] is a placeholder unless the script is to act (ARGV[8] "").
local checks = {{KEYS[4], 'zset'}, {KEYS[5], 'hash'}}
if ARGV[8] == '' then checks[3] = {KEYS[6], 'list'} end
local wrong = jb_wrong_type(checks)
if wrong then return wrong end

if redis.call('EXISTS', KEYS[3]) == 1 then
  return jb_gone('not in the failed list')
end
if ARGV[8] == 'gone' then
  return jb_gone('not in the failed list')
end
if ARGV[8] == 'corrupt' then
  return jb_refuse(-2, '', 'corrupt', 'its result cannot be turned into a message')
end
if ARGV[8] ~= '' then
  return jb_refuse(-1, ARGV[8], 'wrong_state', ARGV[8])
end
if not redis.call('ZSCORE', KEYS[4], jb.id) then
  return jb_gone('not in the failed list')
end

redis.call('LPUSH', KEYS[6], ARGV[9])
redis.call('ZREM', KEYS[4], jb.id)
redis.call('HDEL', KEYS[5], jb.id)
return jb_done('retried', ARGV[10], ARGV[11], 'retried as ' .. ARGV[10], ARGV[10])
