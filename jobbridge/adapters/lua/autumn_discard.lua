-- Discard a terminally failed Autumn job: Autumn's own admin discard (exact-string LREM of
-- the dead-record copy on P:dead), plus a `discarded` lifecycle entry and an audit entry.
-- Also removes a dead entry that has no dead-record of its own (Autumn's malformed
-- {"id","error","raw_payload"} entries, entries naming no usable id, or naming an id whose
-- dead-record is another entry): Python reads that entry's exact text (for an entry id
-- "entry:<hex>", the text whose digest the id holds) and this script removes one copy of that
-- text only.
--
-- KEYS[1]: P:dead-record:<id> in "record" mode; in "entry" mode, P:dead-record:<id the entry
--          names> (deleted too when it holds exactly the entry, as Autumn keeps them paired)
-- KEYS[2]: P:dead
-- KEYS[3]: jobbridge lifecycle key of this job
-- KEYS[4]: jobbridge lifecycle list of this source
-- KEYS[5]: jobbridge audit list
-- ARGV[1]: job id (the id the operator acted on: a job id, or an entry id "entry:<hex>")
-- ARGV[2]: "" for "record" mode (act on the dead-record's text), else the exact text of the
--          dead entry to remove ("entry" mode)
-- ARGV[3]: now, Unix ms
-- ARGV[4]: actor
-- ARGV[5]: source name
-- ARGV[6]: lifecycle entry TTL, seconds
-- ARGV[7]: lifecycle list limit
-- ARGV[8]: audit list limit
-- Returns: {code, detail}
--   { 1, ""}           discarded
--   { 0, ""}           no such failed job
--   {-1, "<entry>"}    already canceled / retried / discarded (detail = lifecycle entry JSON)
--   {-1, "not in dead"} the dead-record exists but P:dead holds no identical entry
local id = ARGV[1]
local now, actor, source = ARGV[3], ARGV[4], ARGV[5]

local function refuse(code, detail, outcome, message)
  jb_audit(KEYS[5], ARGV[8], now, actor, source, id, 'discard', outcome, '', message)
  return {code, detail}
end

local function gone()
  local previous = redis.call('GET', KEYS[3])
  if previous then
    return refuse(-1, previous, 'wrong_state', 'already handled by an operator')
  end
  return refuse(0, '', 'not_found', 'no such failed job')
end

local entry
if ARGV[2] ~= '' then
  entry = ARGV[2]
  if redis.call('LREM', KEYS[2], 1, entry) == 0 then
    return gone()
  end
  if redis.call('GET', KEYS[1]) == entry then
    redis.call('DEL', KEYS[1])
  end
else
  entry = redis.call('GET', KEYS[1])
  if not entry then
    return gone()
  end
  if redis.call('LREM', KEYS[2], 0, entry) == 0 then
    return refuse(-1, 'not in dead', 'wrong_state', 'not in the failed list')
  end
  redis.call('DEL', KEYS[1])
end
jb_lifecycle(KEYS[3], KEYS[4], ARGV[6], ARGV[7], id, 'discarded', now, actor, '', entry)
jb_audit(KEYS[5], ARGV[8], now, actor, source, id, 'discard', 'done', '', 'discarded')
return {1, ''}
