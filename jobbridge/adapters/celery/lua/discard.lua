-- Discard a failed Celery task: out of jobbridge's failed index, with a `discarded` lifecycle
-- entry. Celery's own result is left as it is (it expires on Celery's own schedule), and the
-- index never takes the id back while the entry lasts.
--
-- KEYS[1..3], ARGV[1..7]: shared by every script (lua/_prelude.lua)
-- KEYS[4]: jobbridge's index of failed tasks (sorted set of ids)
-- KEYS[5]: jobbridge's index rows (hash: id -> summary)
-- ARGV[8]: the lifecycle copy of the task (JSON of its summary)
-- Returns: {code, detail}
--   { 1, ""}           discarded
--   { 0, ""}           not in the failed index
--   {-1, "<entry>"}    already retried / discarded by an operator (lifecycle JSON)
--   {-5, key, type, expected}  KEYS[n] holds another type: nothing was changed (jb_wrong_type)
jb.action = 'discard'

local wrong = jb_wrong_type({{KEYS[4], 'zset'}, {KEYS[5], 'hash'}})
if wrong then return wrong end

if redis.call('EXISTS', KEYS[3]) == 1 then
  return jb_gone('not in the failed list')
end
if redis.call('ZREM', KEYS[4], jb.id) == 0 then
  return jb_gone('not in the failed list')
end
redis.call('HDEL', KEYS[5], jb.id)
return jb_done('discarded', '', ARGV[8], 'discarded')
