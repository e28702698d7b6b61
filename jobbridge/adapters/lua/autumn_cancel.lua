-- Cancel an Autumn job that no worker has taken: Autumn's own admin cancel, plus a
-- `canceled` lifecycle entry and an audit entry written in the same script.
-- The removal itself is the state check: a worker's claim pops the id in its own script, so
-- either this LREM/ZREM wins and no worker will ever see the id, or the claim won and the
-- job is running, which is refused.
--
-- KEYS[1]: P:record:<id>
-- KEYS[2]: the job's queue list (P:queue or P:queue:<name>), from the record Python read;
--          P:queue when that record was missing or unreadable (as Autumn does)
-- KEYS[3]: P:blocked
-- KEYS[4]: P:delayed
-- KEYS[5]: P:processing
-- KEYS[6]: the job's unique lock P:unique:<name>:<unique_key>, or P:unique:- (never written)
-- KEYS[7]: jobbridge lifecycle key of this job
-- KEYS[8]: jobbridge lifecycle list of this source
-- KEYS[9]: jobbridge audit list
-- ARGV[1]: job id
-- ARGV[2]: "1" to compare-and-delete the unique lock (window pending or running), else "0"
-- ARGV[3]: now, Unix ms
-- ARGV[4]: actor
-- ARGV[5]: source name
-- ARGV[6]: lifecycle entry TTL, seconds
-- ARGV[7]: lifecycle list limit
-- ARGV[8]: audit list limit
-- Returns: {code, detail}
--   { 1, ""}            canceled
--   { 0, ""}            no such job (no record)
--   {-1, "running"}     a worker holds it
--   {-1, "<status>"}    already canceled / retried / discarded (detail = lifecycle entry JSON)
--   {-1, "not waiting"} a record exists but the job is in no waiting list
local id = ARGV[1]
local now, actor, source = ARGV[3], ARGV[4], ARGV[5]

local function refuse(code, detail, outcome, message)
  jb_audit(KEYS[9], ARGV[8], now, actor, source, id, 'cancel', outcome, '', message)
  return {code, detail}
end

local record = redis.call('GET', KEYS[1])
if not record then
  local previous = redis.call('GET', KEYS[7])
  if previous then
    return refuse(-1, previous, 'wrong_state', 'already handled by an operator')
  end
  return refuse(0, '', 'not_found', 'no such job')
end

local removed = redis.call('LREM', KEYS[2], 0, id)
if removed == 0 then removed = redis.call('ZREM', KEYS[3], id) end
if removed == 0 then removed = redis.call('ZREM', KEYS[4], id) end
if removed == 0 then
  if redis.call('ZSCORE', KEYS[5], id) then
    return refuse(-1, 'running', 'wrong_state', 'already running')
  end
  return refuse(-1, 'not waiting', 'wrong_state', 'not in a queue, the delayed set or the blocked set')
end

-- Compare-and-delete: only the lock this job owns.
if ARGV[2] == '1' and redis.call('GET', KEYS[6]) == id then
  redis.call('DEL', KEYS[6])
end
redis.call('DEL', KEYS[1])
jb_lifecycle(KEYS[7], KEYS[8], ARGV[6], ARGV[7], id, 'canceled', now, actor, '', record)
jb_audit(KEYS[9], ARGV[8], now, actor, source, id, 'cancel', 'done', '', 'canceled')
return {1, ''}
