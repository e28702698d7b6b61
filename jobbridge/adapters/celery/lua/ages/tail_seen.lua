-- Remember when each message now at the oldest end (index -1) of a Celery broker list was
-- first seen there, by its delivery tag, or when its producer sent it (a `task-sent` event,
-- exact), in one hash every replica shares. Forget the tags that were at a tail before and
-- are no longer (taken by a worker), and, past a bound, every tag that is not at a tail now.
-- jobbridge's own key only: the broker lists are read by Python, never touched here.
--
-- KEYS[1]: the hash, delivery tag -> "f<ms>" (first seen at a tail, a lower bound of its
--          wait) or "s<ms>" (its task-sent time, exact)
-- ARGV[1]: now, Unix ms (the time a newly seen tag is remembered with)
-- ARGV[2]: the hash's TTL, seconds (renewed on every call)
-- ARGV[3]: the field count past which every tag not named in ARGV[5..] is dropped
-- ARGV[4]: how many (tag, sent) pairs follow
-- ARGV[5..]: pairs: a tag now at a tail, and its task-sent time in ms or "" when not known
-- ARGV[after the pairs..]: tags at a tail before and no longer, to forget
-- Returns: {remembered, forgotten}, or {-1, type} when KEYS[1] is not a hash (nothing changed)
local key = KEYS[1]
local kind = redis.call('TYPE', key).ok
if kind ~= 'none' and kind ~= 'hash' then
  return {-1, kind}
end

local now = ARGV[1]
local pairs_n = tonumber(ARGV[4])
local keep = {}
local remembered = 0
for i = 0, pairs_n - 1 do
  local tag, sent = ARGV[5 + 2 * i], ARGV[6 + 2 * i]
  keep[tag] = true
  if sent ~= '' then
    -- a sent time outranks a first sighting; an earlier sent time is not overwritten
    local held = redis.call('HGET', key, tag)
    if not held or string.sub(held, 1, 1) ~= 's' then
      redis.call('HSET', key, tag, 's' .. sent)
      remembered = remembered + 1
    end
  else
    remembered = remembered + redis.call('HSETNX', key, tag, 'f' .. now)
  end
end

local forgotten = 0
for i = 5 + 2 * pairs_n, #ARGV do
  if not keep[ARGV[i]] then
    forgotten = forgotten + redis.call('HDEL', key, ARGV[i])
  end
end

-- A replica that died between its steps leaves its departed tails behind: past the bound,
-- keep only the tails of now (HKEYS of a hash this small is bounded work).
if redis.call('HLEN', key) > tonumber(ARGV[3]) then
  for _, tag in ipairs(redis.call('HKEYS', key)) do
    if not keep[tag] then
      forgotten = forgotten + redis.call('HDEL', key, tag)
    end
  end
end

if redis.call('EXISTS', key) == 1 then
  redis.call('EXPIRE', key, tonumber(ARGV[2]))
end
return {remembered, forgotten}
