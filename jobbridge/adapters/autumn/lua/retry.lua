-- Retry a terminally failed Autumn job under a new id: Autumn's own admin retry (unique lock
-- re-take, exact-string LREM on P:dead, DEL dead-record, SET the new record, LPUSH its queue),
-- plus a `retried` lifecycle entry naming the new id and an audit entry, in one script.
--
-- Python reads the dead-record, derives the new record from it (so integers stay integers and
-- nothing is re-encoded by cjson) and computes the queue and lock keys; this script re-checks
-- that the dead-record is still byte-identical to what Python read before acting on it.
--
-- KEYS[1..3], ARGV[1..7]: shared by every script (lua/_prelude.lua); ARGV[7] is the old id
-- KEYS[4]: P:dead-record:<old id>
-- KEYS[5]: P:dead
-- KEYS[6]: P:record:<new id>
-- KEYS[7]: the job's queue list (P:queue or P:queue:<name>)
-- KEYS[8]: the job's unique lock P:unique:<name>:<unique_key>, or P:unique:- (never written)
-- ARGV[8]: the dead-record text Python read ("" when it found none), or, in "malformed"
--          mode, the exact text of a malformed dead entry ({"id","error","raw_payload"})
-- ARGV[9]: "retry"; "corrupt" when Python could not decode ARGV[8]; "malformed" when there is
--          no dead-record but P:dead holds a malformed entry for this id
-- ARGV[10]: new id
-- ARGV[11]: the new record (JSON text)
-- ARGV[12]: "1" to take the unique lock (unique key with a pending or running window), else "0"
-- Returns: {code, detail}
--   { 1, "<new id>"}    retried
--   { 0, ""}            no such failed job
--   {-1, "<entry>"}     already canceled / retried / discarded (detail = lifecycle entry JSON)
--   {-1, "not failed"}  the dead-record exists but P:dead holds no identical entry
--   {-2, ""}            the stored record or dead entry is corrupt (nothing changed)
--   {-3, "<holder>"}    an equivalent unique job holds the lock (detail = its id)
--   {-4, ""}            the dead-record changed since Python read it; read again
--   {-5, key, type, expected}  KEYS[n] holds another type: nothing was changed (jb_wrong_type)
jb.action = 'retry'
local expected, mode, new_id = ARGV[8], ARGV[9], ARGV[10]

local checks = {{KEYS[4], 'string'}, {KEYS[5], 'list'}, {KEYS[6], 'string'}, {KEYS[7], 'list'}}
if ARGV[12] == '1' then checks[#checks + 1] = {KEYS[8], 'string'} end
local wrong = jb_wrong_type(checks)
if wrong then return wrong end

local current = redis.call('GET', KEYS[4])
if not current then
  if mode == 'malformed' then
    if redis.call('LPOS', KEYS[5], expected) then
      return jb_refuse(-2, '', 'corrupt', 'malformed dead entry: Autumn could not decode it')
    end
  elseif expected ~= '' then
    return {-4, ''}
  end
  return jb_gone('no such failed job')
end
if current ~= expected then return {-4, ''} end
if mode == 'corrupt' then
  return jb_refuse(-2, '', 'corrupt', 'invalid stored payload')
end

local took_lock = false
if ARGV[12] == '1' then
  if not redis.call('SET', KEYS[8], new_id, 'NX', 'PX', 86400000) then
    local holder = redis.call('GET', KEYS[8]) or ''
    return jb_refuse(-3, holder, 'conflict', 'an equivalent unique job is already pending or running')
  end
  took_lock = true
end

if redis.call('LREM', KEYS[5], 0, current) == 0 then
  if took_lock and redis.call('GET', KEYS[8]) == new_id then
    redis.call('DEL', KEYS[8])
  end
  return jb_refuse(-1, 'not failed', 'wrong_state', 'not in the failed list')
end
redis.call('DEL', KEYS[4])

-- The record before its id: a claim drops ids that have no record.
redis.call('SET', KEYS[6], ARGV[11])
redis.call('LPUSH', KEYS[7], new_id)
return jb_done('retried', new_id, current, 'retried', new_id)
