"""The emulator's copy of Autumn's Lua transitions: enqueue, claim, settle, stale recovery,
delayed and blocked promotion (docs/autumn.md §3). Each is one atomic script, as Autumn's."""

from __future__ import annotations

# ---------------------------------------------------------------------------------------------
# Lua: the emulator's copy of Autumn's scripts
# ---------------------------------------------------------------------------------------------

#: KEYS: lock (or the P:unique:- placeholder), record, delayed, queue
#: ARGV: id, encoded record, unique "1"/"0", lock ttl ms, delayed "1"/"0", due ms
#: Returns 1 when enqueued, 0 when coalesced by a held unique lock.
ENQUEUE_LUA = """
if ARGV[3] == '1' then
  if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[4]) then
    return 0
  end
end
redis.call('SET', KEYS[2], ARGV[2])
if ARGV[5] == '1' then
  redis.call('ZADD', KEYS[3], ARGV[6], ARGV[1])
else
  redis.call('LPUSH', KEYS[4], ARGV[1])
end
return 1
"""

#: KEYS: processing, blocked, queue lists in priority order...
#: ARGV: record prefix, unique prefix, concurrency prefix, worker id, now ms, visibility ms,
#:       scan limit per queue, blocked delay ms, lock backstop ms
#: Returns {'claimed', id, cjson record} | {'malformed', id, raw body} | false
CLAIM_LUA = """
local now = tonumber(ARGV[5])
local deadline = now + tonumber(ARGV[6])
local scan = tonumber(ARGV[7])
for q = 3, #KEYS do
  for _ = 1, scan do
    local id = redis.call('RPOP', KEYS[q])
    if not id then break end
    local rkey = ARGV[1] .. id
    local raw = redis.call('GET', rkey)
    if raw then
      local ok, rec = pcall(cjson.decode, raw)
      if not ok or type(rec) ~= 'table' then
        redis.call('ZADD', KEYS[1], deadline, id)
        return {'malformed', id, raw}
      end
      local parked = false
      if type(rec.concurrency_limit) == 'number' then
        local scope = rec.concurrency_key
        if type(scope) ~= 'string' then scope = '' end
        local ckey = ARGV[3] .. tostring(rec.name) .. ':' .. scope
        local current = tonumber(redis.call('GET', ckey) or '0') or 0
        if current >= rec.concurrency_limit then
          redis.call('ZADD', KEYS[2], now + tonumber(ARGV[8]), id)
          parked = true
        else
          redis.call('INCR', ckey)
        end
      end
      if not parked then
        if type(rec.unique_key) == 'string' then
          local lkey = ARGV[2] .. tostring(rec.name) .. ':' .. rec.unique_key
          if rec.unique_window == 'pending' then
            if redis.call('GET', lkey) == id then redis.call('DEL', lkey) end
          elseif rec.unique_window == 'running' then
            redis.call('PEXPIRE', lkey, ARGV[9])
          end
        end
        rec.claimed_by = ARGV[4]
        rec.claimed_at_ms = now
        rec.started_at_ms = now
        rec.finished_at_ms = nil
        local enc = cjson.encode(rec)
        redis.call('SET', rkey, enc)
        redis.call('ZADD', KEYS[1], deadline, id)
        return {'claimed', id, enc}
      end
    end
  end
end
return false
"""

# Shared by settle and stale recovery: identity check, slot release, lock helpers, dead push.
_TRANSITION_COMMON_LUA = """
local function identity_ok(rkey, worker, claimed_at)
  local raw = redis.call('GET', rkey)
  if not raw then return false end
  local ok, cur = pcall(cjson.decode, raw)
  if not ok or type(cur) ~= 'table' then return false end
  if cur.claimed_by ~= worker then return false end
  if type(cur.claimed_at_ms) ~= 'number' then return false end
  return cur.claimed_at_ms == tonumber(claimed_at)
end
local function release_slot(limited, ckey)
  if limited ~= '1' then return end
  local current = tonumber(redis.call('GET', ckey) or '0') or 0
  if current <= 1 then
    redis.call('DEL', ckey)
  else
    redis.call('DECR', ckey)
  end
end
local function release_lock(flag, lkey, id)
  if flag == '1' and redis.call('GET', lkey) == id then redis.call('DEL', lkey) end
end
-- 'pending': take the lock again; false when another job owns it. 'running': refresh it.
local function requeue_lock(action, lkey, id, backstop)
  if action == 'pending' then
    if not redis.call('SET', lkey, id, 'NX', 'PX', backstop) then
      if redis.call('GET', lkey) ~= id then return false end
    end
  end
  return true
end
local function refresh_running_lock(action, lkey, backstop)
  if action == 'running' then redis.call('PEXPIRE', lkey, backstop) end
end
local function push_dead(dead, drkey, drprefix, enc, limit)
  redis.call('LPUSH', dead, enc)
  redis.call('SET', drkey, enc)
  local trimmed = redis.call('LRANGE', dead, limit, -1)
  for _, entry in ipairs(trimmed) do
    local ok, old = pcall(cjson.decode, entry)
    if ok and type(old) == 'table' and type(old.id) == 'string' then
      redis.call('DEL', drprefix .. old.id)
    end
  end
  redis.call('LTRIM', dead, 0, limit - 1)
end
"""

#: KEYS: record, processing, completed, delayed, dead, dead-record, lock, concurrency counter
#: ARGV: id, worker id, claimed_at ms, mode (success|retry|dead), encoded record, due ms,
#:       limited "1"/"0", release lock "1"/"0", requeue lock action (pending|running|""),
#:       dead-record prefix, history limit, lock backstop ms
#: Returns 0 when the claim changed, 1 when settled, 2 when a retry was dropped (lock taken).
SETTLE_LUA = (
    _TRANSITION_COMMON_LUA
    + """
if not identity_ok(KEYS[1], ARGV[2], ARGV[3]) then return 0 end
local id, mode, enc = ARGV[1], ARGV[4], ARGV[5]
local limit = tonumber(ARGV[11])
redis.call('ZREM', KEYS[2], id)
release_slot(ARGV[7], KEYS[8])
if mode == 'success' then
  release_lock(ARGV[8], KEYS[7], id)
  redis.call('LPUSH', KEYS[3], enc)
  redis.call('LTRIM', KEYS[3], 0, limit - 1)
  redis.call('DEL', KEYS[1])
  return 1
elseif mode == 'retry' then
  if not requeue_lock(ARGV[9], KEYS[7], id, ARGV[12]) then
    redis.call('DEL', KEYS[1])
    return 2
  end
  redis.call('SET', KEYS[1], enc)
  redis.call('ZADD', KEYS[4], ARGV[6], id)
  refresh_running_lock(ARGV[9], KEYS[7], ARGV[12])
  return 1
end
release_lock(ARGV[8], KEYS[7], id)
push_dead(KEYS[5], KEYS[6], ARGV[10], enc, limit)
redis.call('DEL', KEYS[1])
return 1
"""
)

#: KEYS: record, processing, the job's queue list, dead, dead-record, lock, concurrency counter
#: ARGV: id, claimed_by, claimed_at ms, mode (requeue|dead), encoded record, limited "1"/"0",
#:       release lock on dead "1"/"0", requeue lock action, dead-record prefix, history limit,
#:       lock backstop ms
#: Returns 0 when the claim changed, 1 when recovered, 2 when the requeue was dropped.
RECOVER_LUA = (
    _TRANSITION_COMMON_LUA
    + """
if not identity_ok(KEYS[1], ARGV[2], ARGV[3]) then return 0 end
local id, mode, enc = ARGV[1], ARGV[4], ARGV[5]
redis.call('ZREM', KEYS[2], id)
release_slot(ARGV[6], KEYS[7])
if mode == 'requeue' then
  if not requeue_lock(ARGV[8], KEYS[6], id, ARGV[11]) then
    redis.call('DEL', KEYS[1])
    return 2
  end
  redis.call('SET', KEYS[1], enc)
  redis.call('LPUSH', KEYS[3], id)
  refresh_running_lock(ARGV[8], KEYS[6], ARGV[11])
  return 1
end
release_lock(ARGV[7], KEYS[6], id)
push_dead(KEYS[4], KEYS[5], ARGV[9], enc, tonumber(ARGV[10]))
redis.call('DEL', KEYS[1])
return 1
"""
)

_PROMOTE_COMMON_LUA = """
local function queue_for(base, rec)
  local name = 'default'
  if rec and type(rec.queue) == 'string' then
    name = string.match(rec.queue, '^%s*(.-)%s*$')
  end
  if name == '' or name == 'default' then return base end
  return base .. ':' .. name
end
local function decode(raw)
  if not raw then return nil end
  local ok, rec = pcall(cjson.decode, raw)
  if ok and type(rec) == 'table' then return rec end
  return nil
end
"""

#: KEYS: delayed
#: ARGV: record prefix, default queue key (P:queue), now ms, then per due id three values:
#:       the id, the record as read before the script ("" when missing), and its serde rewrite
#:       ("" when serde rejects it: Autumn then leaves the record alone)
#: Moves the ids to their queues; a record still as read gets its rewrite (enqueued_at_ms =
#: now; started, finished and claim fields null) in the same script. Autumn's own rewrite is a
#: later MGET/SET a claim can interleave with (docs/autumn.md §5.10); here it cannot. Returns
#: the count.
PROMOTE_DELAYED_LUA = (
    _PROMOTE_COMMON_LUA
    + """
local moved, now = 0, tonumber(ARGV[3])
for i = 4, #ARGV, 3 do
  local id, seen, rewrite = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  -- Still due? It may have been re-delayed since it was read.
  local due = tonumber(redis.call('ZSCORE', KEYS[1], id))
  if due and due <= now and redis.call('ZREM', KEYS[1], id) == 1 then
    local rkey = ARGV[1] .. id
    local current = redis.call('GET', rkey)
    if current and current == seen and rewrite ~= '' then
      redis.call('SET', rkey, rewrite)
    end
    redis.call('LPUSH', queue_for(ARGV[2], decode(current)), id)
    moved = moved + 1
  end
end
return moved
"""
)

#: KEYS: blocked
#: ARGV: now ms, batch, record prefix, default queue key (P:queue)
#: Moves due parked ids back to their queue; no record rewrite. Returns the count.
PROMOTE_BLOCKED_LUA = (
    _PROMOTE_COMMON_LUA
    + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local moved = 0
for _, id in ipairs(ids) do
  if redis.call('ZREM', KEYS[1], id) == 1 then
    local rec = decode(redis.call('GET', ARGV[3] .. id))
    redis.call('LPUSH', queue_for(ARGV[4], rec), id)
    moved = moved + 1
  end
end
return moved
"""
)

#: KEYS: dead, processing.  ARGV: encoded malformed entry, id.
#: The malformed path (docs/autumn.md §3.4): no dead-record key, no trim, the record key is
#: left orphaned.
MALFORMED_LUA = """
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
"""
