-- Shared by every jobbridge script: prepended by jobbridge/adapters/scripts.py, so each
-- action stays one atomic EVAL. Functions only; it reads no KEYS or ARGV of its own.

-- Append one audit entry (newest first) and keep the list bounded.
local function jb_audit(audit_key, limit, at_ms, actor, source, job_id, action, outcome, new_id, message)
  local entry = cjson.encode({
    at_ms = tonumber(at_ms), actor = actor, source = source, job_id = job_id,
    action = action, outcome = outcome, new_id = new_id or '', message = message or ''
  })
  redis.call('LPUSH', audit_key, entry)
  redis.call('LTRIM', audit_key, 0, tonumber(limit) - 1)
end

-- Record what an operator did to a job: one key per job (expiring) for look-ups, and a
-- bounded newest-first list for browsing. `record` is the stored text, kept byte for byte.
local function jb_lifecycle(entry_key, list_key, ttl_s, limit, job_id, status, at_ms, actor, new_id, record)
  local entry = cjson.encode({
    job_id = job_id, status = status, at_ms = tonumber(at_ms), actor = actor,
    new_id = new_id or '', record = record or ''
  })
  redis.call('SET', entry_key, entry, 'EX', tonumber(ttl_s))
  redis.call('LPUSH', list_key, entry)
  redis.call('LTRIM', list_key, 0, tonumber(limit) - 1)
end
