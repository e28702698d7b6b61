-- Discard a terminally failed Autumn job: Autumn's own admin discard (exact-string LREM of
-- the dead-record copy on P:dead), plus a `discarded` lifecycle entry and an audit entry.
-- Also removes a dead entry that has no dead-record of its own (Autumn's malformed
-- {"id","error","raw_payload"} entries, entries naming no usable id, or naming an id whose
-- dead-record is another entry): Python reads that entry's exact text (for an entry id
-- "entry:<hex>", the text whose digest the id holds) and this script removes one copy of that
-- text only.
--
-- KEYS[1..3], ARGV[1..7]: shared by every script (lua/_prelude.lua); ARGV[7] is the id the
--          operator acted on: a job id, or an entry id "entry:<hex>"
-- KEYS[4]: P:dead-record:<id> in "record" mode; in "entry" mode, P:dead-record:<id the entry
--          names> (deleted too when it holds exactly the entry, as Autumn keeps them paired)
-- KEYS[5]: P:dead
-- ARGV[8]: "" for "record" mode (act on the dead-record's text), else the exact text of the
--          dead entry to remove ("entry" mode)
-- Returns: {code, detail}
--   { 1, ""}            discarded
--   { 0, ""}            no such failed job
--   {-1, "<entry>"}     already canceled / retried / discarded (detail = lifecycle entry JSON)
--   {-1, "not failed"}  the dead-record exists but P:dead holds no identical entry
--   {-5, key, type, expected}  KEYS[n] holds another type: nothing was changed (jb_wrong_type)
jb.action = 'discard'

local wrong = jb_wrong_type({{KEYS[4], 'string'}, {KEYS[5], 'list'}})
if wrong then return wrong end

local entry
if ARGV[8] ~= '' then
  entry = ARGV[8]
  if redis.call('LREM', KEYS[5], 1, entry) == 0 then
    return jb_gone('no such failed job')
  end
  if redis.call('GET', KEYS[4]) == entry then
    redis.call('DEL', KEYS[4])
  end
else
  entry = redis.call('GET', KEYS[4])
  if not entry then
    return jb_gone('no such failed job')
  end
  if redis.call('LREM', KEYS[5], 0, entry) == 0 then
    return jb_refuse(-1, 'not failed', 'wrong_state', 'not in the failed list')
  end
  redis.call('DEL', KEYS[4])
end
return jb_done('discarded', '', entry, 'discarded')
