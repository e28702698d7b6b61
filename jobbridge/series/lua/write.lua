-- Advance one source's chart series by one follower step: count newly finished jobs once
-- each, record the depth samples, trim steps that left their window, move the cursor.
-- Only the replica holding the lease writes, and only from the cursor it read: a replica
-- that lost the lease, or read a cursor another has since advanced, writes nothing.
--
-- KEYS[1]: the lease (string: the holder's token)
-- KEYS[2]: the feed's cursor (string)
-- KEYS[3]: the seen set (sorted set of "<id>:<finish ms>" scored by finish seconds)
-- KEYS[4], KEYS[5]: the source's 1h and 24h hashes
-- KEYS[6 ...]: the 1h and 24h hashes of each queue, in pairs (queue i: 4 + 2i, 5 + 2i)
-- ARGV[1]: the lease token
-- ARGV[2]: the cursor the step read from ("" when there was none)
-- ARGV[3]: the cursor to store
-- ARGV[4]: now, Unix seconds
-- ARGV[5]: seconds every key lives after a write (EXPIRE; hashes: after their last trim)
-- ARGV[6]: the enqueued sample of the source ("" when not sampled)
-- ARGV[7]: the number of queues n
-- ARGV[8 .. 7+n]: the enqueued sample of each queue ("" when not sampled)
-- ARGV[8+n ...]: the jobs, four values each: seen member, finish Unix seconds,
--   "c" (completed) or "f" (failed), queue index (1..n; 0: no followed queue)
-- Returns: the number of jobs counted (not seen before), or -1 when the lease is not held
--   by this token, or -2 when the cursor is not the one the step read from.
-- Hash fields: c:<step start>, f:<step start>, e:<step start>, "since" (first write, Unix
--   seconds) and "trim" (the oldest step start kept).

if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local cursor = redis.call('GET', KEYS[2])
if (cursor or '') ~= ARGV[2] then
  return -2
end

local now = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
local n = tonumber(ARGV[7])
-- window of each hash: seconds per step and steps kept
local STEP = {60, 900}
local POINTS = {60, 96}

local function oldest(w)
  return (math.floor(now / STEP[w]) - POINTS[w] + 1) * STEP[w]
end

local function bucket(w, at)
  return math.floor(at / STEP[w]) * STEP[w]
end

-- Hashes written by this step. A hash is trimmed (and given its TTL) when its window has
-- moved on since its last trim: once a minute for an hour, once per 15 minutes for a day.
-- Invariant: every step field of a hash lies in [trim, trim + one window), since each write
-- trims first to the cut of its own now and writes no step after its own now; so a trim
-- deletes at most one window of steps, however long the gap since the last one.
local touched = {}
local function touch(key, w)
  if touched[key] then
    return
  end
  touched[key] = w
  local cut = oldest(w)
  local trim = tonumber(redis.call('HGET', key, 'trim'))
  if trim == cut then
    return
  end
  redis.call('HSETNX', key, 'since', now)
  local from = trim or cut
  local stop = math.min(cut, from + POINTS[w] * STEP[w])
  local b = from
  while b < stop do
    redis.call('HDEL', key, 'c:' .. b, 'f:' .. b, 'e:' .. b)
    b = b + STEP[w]
  end
  redis.call('HSET', key, 'trim', cut)
  redis.call('EXPIRE', key, ttl)
end

local function sample(first, value)
  if value == '' then
    return
  end
  for w = 1, 2 do
    local key = KEYS[first + w - 1]
    touch(key, w)
    redis.call('HSET', key, 'e:' .. bucket(w, now), value)
  end
end

sample(4, ARGV[6])
for i = 1, n do
  sample(4 + 2 * i, ARGV[7 + i])
end

-- Increments are summed per hash and field first: one HINCRBY per step touched, not per job.
local counted = 0
local keep_from = now - ttl
local sums = {}
local function add(k, w, field)
  touch(KEYS[k], w)
  sums[k] = sums[k] or {}
  sums[k][field] = (sums[k][field] or 0) + 1
end
local i = 8 + n
while i + 3 <= #ARGV do
  local at = tonumber(ARGV[i + 1])
  if at >= keep_from and redis.call('ZADD', KEYS[3], 'NX', at, ARGV[i]) == 1 then
    counted = counted + 1
    local kind = ARGV[i + 2]
    local q = tonumber(ARGV[i + 3])
    for w = 1, 2 do
      if at >= oldest(w) then
        local field = kind .. ':' .. bucket(w, at)
        add(3 + w, w, field)
        if q > 0 then
          add(3 + 2 * q + w, w, field)
        end
      end
    end
  end
  i = i + 4
end
for k, fields in pairs(sums) do
  for field, by in pairs(fields) do
    redis.call('HINCRBY', KEYS[k], field, by)
  end
end

redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. keep_from)
redis.call('EXPIRE', KEYS[3], ttl)
redis.call('SET', KEYS[2], ARGV[3], 'EX', ttl)
return counted
