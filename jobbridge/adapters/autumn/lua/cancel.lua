-- Cancel an Autumn job that no worker has taken: Autumn's own admin cancel, plus a
-- `canceled` lifecycle entry and an audit entry written in the same script.
-- The removal itself is the state check: a worker's claim pops the id in its own script, so
-- either this LREM/ZREM wins and no worker will ever see the id, or the claim won and the
-- job is running, which is refused.
--
-- KEYS[1..3], ARGV[1..7]: shared by every script (lua/_prelude.lua)
-- KEYS[4]: P:record:<id>
-- KEYS[5]: the job's queue list (P:queue or P:queue:<name>), from the record Python read;
--          P:queue when that record was missing or unreadable (as Autumn does)
-- KEYS[6]: P:blocked
-- KEYS[7]: P:delayed
-- KEYS[8]: P:processing
-- KEYS[9]: the job's unique lock P:unique:<name>:<unique_key>, or P:unique:- (never written)
-- ARGV[8]: "1" to compare-and-delete the unique lock (window pending or running), else "0"
-- Returns: {code, detail}
--   { 1, ""}            canceled
--   { 0, ""}            no such job (no record)
--   {-1, "running"}     a worker holds it
--   {-1, "<entry>"}     already canceled / retried / discarded (detail = lifecycle entry JSON)
--   {-1, "not waiting"} a record exists but the job is in no waiting list
--   {-5, key, type, expected}  KEYS[n] holds another type: nothing was changed (jb_wrong_type)
jb.action = 'cancel'
local id = jb.id

local checks = {{KEYS[4], 'string'}, {KEYS[5], 'list'}, {KEYS[6], 'zset'}, {KEYS[7], 'zset'},
  {KEYS[8], 'zset'}}
if ARGV[8] == '1' then checks[#checks + 1] = {KEYS[9], 'string'} end
local wrong = jb_wrong_type(checks)
if wrong then return wrong end

local record = redis.call('GET', KEYS[4])
if not record then
  return jb_gone('no such job')
end

local removed = redis.call('LREM', KEYS[5], 0, id)
if removed == 0 then removed = redis.call('ZREM', KEYS[6], id) end
if removed == 0 then removed = redis.call('ZREM', KEYS[7], id) end
if removed == 0 then
  if redis.call('ZSCORE', KEYS[8], id) then
    return jb_refuse(-1, 'running', 'wrong_state', 'already running')
  end
  return jb_refuse(-1, 'not waiting', 'wrong_state',
    'not in a queue, the delayed set or the blocked set')
end

-- Compare-and-delete: only the lock this job owns.
if ARGV[8] == '1' and redis.call('GET', KEYS[9]) == id then
  redis.call('DEL', KEYS[9])
end
redis.call('DEL', KEYS[4])
return jb_done('canceled', '', record, 'canceled')
