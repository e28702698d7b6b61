-- Audit a refusal that Python decided before an action script could run, and return it:
-- the action would have named a key after a stored value (a queue, a worker) that is not one
-- of the source's (jobbridge/adapters/keyguard.py). Bound for every system; writes nothing
-- but the audit entry, so a refusal is in the audit log like every other one.
--
-- KEYS[1..3], ARGV[1..7]: shared by every script (lua/_prelude.lua)
-- ARGV[8]: the action refused ("cancel", "retry", "discard", "stop")
-- ARGV[9]: the reply code: -1 wrong state, -2 corrupt
-- ARGV[10]: the audited outcome ("wrong_state", "corrupt")
-- ARGV[11]: the audited message: why
-- Returns: {code, detail} (audited, unless the audit list is not a list: then only returned)
--   {-1, ""}  refused: the stored value is not one of the source's queues or workers
--   {-2, ""}  refused: the stored value can never name one of the system's keys
jb.action = ARGV[8]

-- The refusal stands whatever the audit list is: one of another type is left alone (an
-- LPUSH would fail after nothing, but the reply would be an error instead of the reason).
local audit_type = redis.call('TYPE', KEYS[1]).ok
if audit_type ~= 'list' and audit_type ~= 'none' then
  return {tonumber(ARGV[9]), ''}
end
return jb_refuse(tonumber(ARGV[9]), '', ARGV[10], ARGV[11])
