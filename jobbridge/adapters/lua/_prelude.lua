-- Shared by every jobbridge action script: prepended by jobbridge/adapters/scripts.py, so each
-- action stays one atomic EVAL. Every script takes the same first KEYS and ARGV, built by
-- jobbridge/adapters/operator_log.py (OperatorKeys.script_keys, script_argv):
--
-- KEYS[1]: jobbridge audit list (one per Redis)
-- KEYS[2]: jobbridge lifecycle list of this source
-- KEYS[3]: jobbridge lifecycle key of what is acted on: KEYS[2] .. ':' .. id for the job
--          itself, KEYS[2] .. '#' .. entry .. ':' .. id for one kind of entry carrying the id
--          (jobbridge/adapters/operator_log.py, OperatorKeys.lifecycle); audit entries name it
-- ARGV[1]: now, Unix ms
-- ARGV[2]: actor
-- ARGV[3]: source name
-- ARGV[4]: lifecycle entry TTL, seconds
-- ARGV[5]: lifecycle list limit
-- ARGV[6]: audit list limit
-- ARGV[7]: the job id acted on
--
-- A script's own KEYS start at KEYS[4] and its own ARGV at ARGV[8]. Replies are
-- {code, detail}: 1 done, 0 not found, -1 wrong state, -2 corrupt, -3 conflict, -4 changed
-- since Python read it (jobbridge/adapters/outcomes.py words them); and {-5, key, its type,
-- the type expected}: a key holds another type than the action needs, nothing was changed
-- (jb_wrong_type).

local jb = {
  now = ARGV[1], actor = ARGV[2], source = ARGV[3], id = ARGV[7],
  -- set by each script to its action's name
  action = '',
  -- the kind of entry acted on ('' the job itself), as KEYS[3] names it
  entry = ''
}
do
  local rest = string.sub(KEYS[3], #KEYS[2] + 1)
  if string.sub(rest, 1, 1) == '#' then
    local stop = string.find(rest, ':', 2, true)
    if stop then jb.entry = string.sub(rest, 2, stop - 1) end
  end
end

-- Append one audit entry (newest first) and keep the list bounded.
local function jb_audit(outcome, new_id, message)
  local entry = cjson.encode({
    at_ms = tonumber(jb.now), actor = jb.actor, source = jb.source, job_id = jb.id,
    action = jb.action, outcome = outcome, new_id = new_id or '', message = message or '',
    entry = jb.entry
  })
  redis.call('LPUSH', KEYS[1], entry)
  redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[6]) - 1)
end

-- Audit a refusal and return it.
local function jb_refuse(code, detail, outcome, message)
  jb_audit(outcome, '', message)
  return {code, detail}
end

-- The job is not where the action needs it: if an operator already handled it, say so
-- (detail = the lifecycle entry); otherwise it is unknown.
local function jb_gone(not_found_message)
  local previous = redis.call('GET', KEYS[3])
  if previous then
    return jb_refuse(-1, previous, 'wrong_state', 'already handled by an operator')
  end
  return jb_refuse(0, '', 'not_found', not_found_message)
end

-- Copies of job records larger than this are not kept (RECORD_COPY_CAP in
-- jobbridge/adapters/operator_log.py): lifecycle keys must stay small whatever size the
-- payloads are.
local JB_RECORD_COPY_CAP = 16384

-- Record what an operator did to the job: the expiring per-job key, holding a copy of the
-- job's record (byte for byte, when small enough) for the detail page; and the bounded
-- newest-first list of the same entries without the copy, for browsing.
local function jb_lifecycle(status, new_id, record)
  local entry = {
    job_id = jb.id, status = status, at_ms = tonumber(jb.now), actor = jb.actor,
    new_id = new_id or '', record = ''
  }
  redis.call('LPUSH', KEYS[2], cjson.encode(entry))
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)
  if record and #record <= JB_RECORD_COPY_CAP then
    entry.record = record
  end
  redis.call('SET', KEYS[3], cjson.encode(entry), 'EX', tonumber(ARGV[4]))
end

-- The action happened: lifecycle entry (when the action makes one), audit, reply.
local function jb_done(status, new_id, record, message, detail)
  if status ~= '' then jb_lifecycle(status, new_id, record) end
  jb_audit('done', new_id, message)
  return {1, detail or ''}
end

-- What TYPE answers, in words for the operator.
local JB_TYPE_WORDS = {
  string = 'a string', list = 'a list', hash = 'a hash', set = 'a set', zset = 'a sorted set',
  stream = 'a stream'
}

-- The type each of jobbridge's own keys (KEYS[1..3]) holds.
local JB_SHARED_TYPES = {'list', 'list', 'string'}

-- Redis keeps the writes a script made before one of its commands failed on a key of another
-- type: an action that met such a key half-way would be half done (a job out of its queue and
-- in no other list). So every script calls this before its first write, with every key of its
-- own that it will write or must read: `checks` is a list of {key, type} ('string', 'list',
-- 'hash', 'set', 'zset'); jobbridge's own KEYS[1..3] are checked first. A missing key always
-- passes. Returns nil when every key holds its type; else the refusal {-5, key, its type, the
-- type expected}, audited, unless the audit list is the key: then nothing at all is written.
local function jb_wrong_type(checks)
  local all = {}
  for n, expected in ipairs(JB_SHARED_TYPES) do all[n] = {KEYS[n], expected} end
  for _, check in ipairs(checks) do all[#all + 1] = check end
  for n, check in ipairs(all) do
    local key, expected = check[1], check[2]
    local actual = redis.call('TYPE', key)['ok']
    if actual ~= 'none' and actual ~= expected then
      if n > 1 then
        jb_audit('corrupt', '', 'key ' .. string.sub(key, 1, 300) .. ' is ' ..
          (JB_TYPE_WORDS[actual] or actual) .. ', expected ' .. JB_TYPE_WORDS[expected] ..
          ': nothing was changed')
      end
      return {-5, key, actual, expected}
    end
  end
  return nil
end
