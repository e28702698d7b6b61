-- Retry a terminally failed Autumn job under a new id: Autumn's own admin retry (unique lock
-- re-take, exact-string LREM on P:dead, DEL dead-record, SET the new record, LPUSH its queue),
-- plus a `retried` lifecycle entry naming the new id and an audit entry, in one script.
--
-- Python reads the dead-record, derives the new record from it (so integers stay integers and
-- nothing is re-encoded by cjson) and computes the queue and lock keys; this script re-checks
-- that the dead-record is still byte-identical to what Python read before acting on it.
--
-- KEYS[1]: P:dead-record:<old id>
-- KEYS[2]: P:dead
-- KEYS[3]: P:record:<new id>
-- KEYS[4]: the job's queue list (P:queue or P:queue:<name>)
-- KEYS[5]: the job's unique lock P:unique:<name>:<unique_key>, or P:unique:- (never written)
-- KEYS[6]: jobbridge lifecycle key of the old id
-- KEYS[7]: jobbridge lifecycle list of this source
-- KEYS[8]: jobbridge audit list
-- ARGV[1]: old id
-- ARGV[2]: the dead-record text Python read ("" when it found none), or, in "malformed"
--          mode, the exact text of a malformed dead entry ({"id","error","raw_payload"})
-- ARGV[3]: "retry"; "corrupt" when Python could not decode ARGV[2]; "malformed" when there is
--          no dead-record but P:dead holds a malformed entry for this id
-- ARGV[4]: new id
-- ARGV[5]: the new record (JSON text)
-- ARGV[6]: "1" to take the unique lock (unique key with a pending or running window), else "0"
-- ARGV[7]: now, Unix ms
-- ARGV[8]: actor
-- ARGV[9]: source name
-- ARGV[10]: lifecycle entry TTL, seconds
-- ARGV[11]: lifecycle list limit
-- ARGV[12]: audit list limit
-- Returns: {code, detail}
--   { 1, "<new id>"}    retried
--   { 0, ""}            no such failed job
--   {-1, "<entry>"}     already canceled / retried / discarded (detail = lifecycle entry JSON)
--   {-1, "not in dead"} the dead-record exists but P:dead holds no identical entry
--   {-2, ""}            the stored record or dead entry is corrupt (nothing changed)
--   {-3, "<holder>"}    an equivalent unique job holds the lock (detail = its id)
--   {-4, ""}            the dead-record changed since Python read it; read again
local old_id, expected, mode, new_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, actor, source = ARGV[7], ARGV[8], ARGV[9]

local function refuse(code, detail, outcome, message)
  jb_audit(KEYS[8], ARGV[12], now, actor, source, old_id, 'retry', outcome, '', message)
  return {code, detail}
end

local current = redis.call('GET', KEYS[1])
if not current then
  if mode == 'malformed' then
    if redis.call('LPOS', KEYS[2], expected) then
      return refuse(-2, '', 'corrupt', 'malformed dead entry: Autumn could not decode it')
    end
  elseif expected ~= '' then
    return {-4, ''}
  end
  local previous = redis.call('GET', KEYS[6])
  if previous then
    return refuse(-1, previous, 'wrong_state', 'already handled by an operator')
  end
  return refuse(0, '', 'not_found', 'no such failed job')
end
if current ~= expected then return {-4, ''} end
if mode == 'corrupt' then
  return refuse(-2, '', 'corrupt', 'invalid stored payload')
end

local took_lock = false
if ARGV[6] == '1' then
  if not redis.call('SET', KEYS[5], new_id, 'NX', 'PX', 86400000) then
    local holder = redis.call('GET', KEYS[5]) or ''
    return refuse(-3, holder, 'conflict', 'an equivalent unique job is already pending or running')
  end
  took_lock = true
end

if redis.call('LREM', KEYS[2], 0, current) == 0 then
  if took_lock and redis.call('GET', KEYS[5]) == new_id then
    redis.call('DEL', KEYS[5])
  end
  return refuse(-1, 'not in dead', 'wrong_state', 'not in the failed list')
end
redis.call('DEL', KEYS[1])

-- The record before its id: a claim drops ids that have no record.
redis.call('SET', KEYS[3], ARGV[5])
redis.call('LPUSH', KEYS[4], new_id)
jb_lifecycle(KEYS[6], KEYS[7], ARGV[10], ARGV[11], old_id, 'retried', now, actor, new_id, current)
jb_audit(KEYS[8], ARGV[12], now, actor, source, old_id, 'retry', 'done', new_id, 'retried')
return {1, new_id}
