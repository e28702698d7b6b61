-- Discard a failed RQ job: out of its failed registry, with a `discarded` lifecycle entry
-- and an audit entry. The job hash and its results are left to expire on RQ's own
-- failure_ttl, as RQ's registry cleanup would leave them; a registry member whose hash
-- already expired (a dangling id) is discarded the same way.
--
-- KEYS[1..3], ARGV[1..7]: shared by every script (lua/_prelude.lua)
-- KEYS[4]: <prefix>:job:<id>
-- KEYS[5]: <prefix>:failed:<origin>
-- ARGV[8]: the job's origin queue as Python read it ("" for a dangling id: the queue whose
--          failed registry lists it)
-- ARGV[9]: the lifecycle copy of the job (JSON of its small fields)
-- Returns: {code, detail}
--   { 1, ""}            discarded
--   { 0, ""}            not in the failed registry
--   {-1, "<entry>"}     already canceled / retried / discarded by an operator (lifecycle JSON)
--   {-1, "not failed"}  listed as failed, but RQ has since requeued or rerun it
--   {-4, ""}            its origin changed since Python read it: read again
--   {-5, key, type, expected}  KEYS[n] holds another type: nothing was changed (jb_wrong_type)
jb.action = 'discard'
local id = jb.id

local wrong = jb_wrong_type({{KEYS[4], 'hash'}, {KEYS[5], 'zset'}})
if wrong then return wrong end

if not redis.call('ZSCORE', KEYS[5], id) then
  return jb_gone('no such failed job')
end
if redis.call('EXISTS', KEYS[4]) == 1 then
  if ARGV[8] ~= '' and redis.call('HGET', KEYS[4], 'origin') ~= ARGV[8] then
    return {-4, ''}
  end
  local status = redis.call('HGET', KEYS[4], 'status')
  if status ~= 'failed' and status ~= 'stopped' then
    return jb_refuse(-1, 'not failed', 'wrong_state', 'not failed (status ' .. tostring(status) .. ')')
  end
end
redis.call('ZREM', KEYS[5], id)
return jb_done('discarded', '', ARGV[9], 'discarded')
