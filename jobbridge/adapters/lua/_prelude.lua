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

-- Copies of job records larger than this are not kept (jobbridge.adapters.base.RECORD_COPY_CAP):
-- lifecycle keys must stay small whatever size the payloads are.
local JB_RECORD_COPY_CAP = 16384

-- Record what an operator did to a job: one expiring key per job, holding a copy of the job's
-- record (byte for byte, when small enough) for the detail page; and a bounded newest-first
-- list of the same entries without the copy, for browsing.
local function jb_lifecycle(entry_key, list_key, ttl_s, limit, job_id, status, at_ms, actor, new_id, record)
  local entry = {
    job_id = job_id, status = status, at_ms = tonumber(at_ms), actor = actor,
    new_id = new_id or '', record = ''
  }
  redis.call('LPUSH', list_key, cjson.encode(entry))
  redis.call('LTRIM', list_key, 0, tonumber(limit) - 1)
  if record and #record <= JB_RECORD_COPY_CAP then
    entry.record = record
  end
  redis.call('SET', entry_key, cjson.encode(entry), 'EX', tonumber(ttl_s))
end
