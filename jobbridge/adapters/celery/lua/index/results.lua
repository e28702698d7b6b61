-- Write a batch of Celery result metas into jobbridge's index of them (one sorted set per
-- bucket, one hash of small summaries), then trim the buckets it touched. Not an operator
-- action: no prelude, no audit. Every replica, its subscriber and its backfill call it with
-- whatever they read, in any order and at once, so the outcome must not depend on the order.
--
-- Each task carries a version that orders its metas (built in
-- jobbridge/adapters/celery/index_summary.py):
--   "1:<date_done ms, 15 digits>:<rank>"  finished: SUCCESS 3, FAILURE 2, REVOKED 1
--   "0:<retries (or ms seen), 15 digits>:<rank>"  unfinished: RETRY 2, STARTED 1, RECEIVED 0
--   either with ":e" appended: the entry comes from one of Celery's task events
--   (jobbridge/adapters/celery/task_events.py); its number is the event's timestamp, ms
-- The version wins that sorts highest, except that a finished task never goes back to an
-- unfinished bucket, and that a meta outranks an event: an event replaces a meta's entry only
-- to finish an unfinished one, and any meta replaces an event's entry (unless it would take a
-- finished task back). Celery's result is the fuller record; events cover what it lacks
-- (ignore_result tasks, running tasks without task_track_started). Two different metas of
-- one version are ordered by the SHA1 of their summaries, so every writer keeps the same one.
-- An id whose row is missing or broken (not written by this script) counts as not indexed:
-- any real meta replaces it. The score of a finished task is its date_done; of an
-- unfinished one, the earliest time any writer saw it unfinished.
-- A summary row is the summary JSON with its version put first: {"v":"<version>",...}.
--
-- KEYS[1]: <base>running     zset: task id -> ms first seen (STARTED, RECEIVED)
-- KEYS[2]: <base>retrying    zset: task id -> ms first seen (RETRY)
-- KEYS[3]: <base>completed   zset: task id -> date_done ms (SUCCESS)
-- KEYS[4]: <base>failed      zset: task id -> date_done ms (FAILURE)
-- KEYS[5]: <base>canceled    zset: task id -> date_done ms (REVOKED)
-- KEYS[6]: <base>rows        hash: task id -> summary row
-- KEYS[6+i]: the jobbridge lifecycle key of task i: when it exists an operator acted on the
--            task (retried, discarded, canceled), and its FAILURE metas are no longer indexed
-- ARGV[1]: now, Unix ms (the trim windows count back from it)
-- ARGV[2]: most ids a bucket keeps (the oldest go first)
-- ARGV[3]: most ids this call trims, over all buckets
-- ARGV[4..8]: how long each bucket keeps an id, ms, in the order of KEYS[1..5]
-- ARGV[9]: "1" trims every bucket, "0" only those this call added to
-- ARGV[10+5(i-1)]: task i's id
-- ARGV[11+5(i-1)]: its state as Celery stored it
-- ARGV[12+5(i-1)]: its version (above)
-- ARGV[13+5(i-1)]: its score, ms (date_done when finished and known, else when seen)
-- ARGV[14+5(i-1)]: its summary JSON (an object of at least one field)
-- Returns: {written, stale, operator, trimmed, unknown}
--   written   tasks added or moved or rewritten
--   stale     tasks whose index entry already holds a newer (or the same) meta
--   operator  FAILURE metas skipped because the task's lifecycle key exists
--   trimmed   ids removed by the window and count trims (with their rows)
--   unknown   entries refused: a state that is in no bucket, or a score that is not a number
-- or {-5, key, its type, the type expected} when KEYS[1..6] holds another type: nothing was
-- written (Redis would keep the writes made before a command failed on it)

local BUCKET = {RECEIVED = 1, STARTED = 1, RETRY = 2, SUCCESS = 3, FAILURE = 4, REVOKED = 5}
local FIRST_FINISHED = 3

local now = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local budget = tonumber(ARGV[3])
local trim_all = ARGV[9] == '1'
local rows = KEYS[6]
local tasks = math.floor((#ARGV - 9) / 5)

for k = 1, 6 do
  local expected = k == 6 and 'hash' or 'zset'
  local actual = redis.call('TYPE', KEYS[k])['ok']
  if actual ~= 'none' and actual ~= expected then
    return {-5, KEYS[k], actual, expected}
  end
end

local written, stale, operator, trimmed, unknown = 0, 0, 0, 0, 0
local touched = {}

-- The version a row holds, and the summary after it; nil for a row that is not one.
local function parse_row(row)
  if not row then
    return nil, nil
  end
  return string.match(row, '^{"v":"([01]:%d+:%d:?e?)",(.*)$')
end

local function from_event(v)
  return string.sub(v, -2) == ':e'
end

for i = 1, tasks do
  local at = 9 + (i - 1) * 5
  local id, version = ARGV[at + 1], ARGV[at + 3]
  local bucket = BUCKET[ARGV[at + 2]]
  local score = tonumber(ARGV[at + 4])
  local rest = string.sub(ARGV[at + 5], 2)
  if bucket == nil or score == nil or KEYS[6 + i] == nil then
    unknown = unknown + 1
  elseif bucket == 4 and redis.call('EXISTS', KEYS[6 + i]) == 1 then
    -- Retried and discarded tasks left the failed bucket for good; a task an operator
    -- canceled still gets its REVOKED meta indexed (that is where it shows).
    operator = operator + 1
  else
    local current, current_score = nil, nil
    for b = 1, 5 do
      local s = redis.call('ZSCORE', KEYS[b], id)
      if s then
        current, current_score = b, tonumber(s)
        break
      end
    end
    -- a row that is missing or that someone broke counts as no entry: any real meta replaces it
    local current_version, current_rest = parse_row(redis.call('HGET', rows, id))

    local finished = bucket >= FIRST_FINISHED
    local replace
    if current == nil or current_version == nil then
      replace = true
    elseif current >= FIRST_FINISHED and not finished then
      replace = false
    elseif from_event(version) ~= from_event(current_version) then
      -- an event finishes a meta's unfinished entry; a meta replaces any event's entry
      replace = not from_event(version) or (finished and current < FIRST_FINISHED)
    elseif version ~= current_version then
      replace = version > current_version
    else
      replace = rest ~= current_rest and redis.sha1hex(rest) > redis.sha1hex(current_rest)
    end

    if replace then
      local new_score = score
      if not finished and current and current < FIRST_FINISHED then
        new_score = math.min(current_score, score)
      end
      for b = 1, 5 do
        if b ~= bucket then
          redis.call('ZREM', KEYS[b], id)
        end
      end
      redis.call('ZADD', KEYS[bucket], new_score, id)
      redis.call('HSET', rows, id, '{"v":"' .. version .. '",' .. rest)
      touched[bucket] = true
      written = written + 1
    else
      stale = stale + 1
      if not finished and current < FIRST_FINISHED and score < current_score then
        -- still unfinished: the earliest sighting is when it was first seen
        redis.call('ZADD', KEYS[current], score, id)
      end
    end
  end
end

local function drop(key, ids)
  if #ids > 0 then
    redis.call('ZREM', key, unpack(ids))
    redis.call('HDEL', rows, unpack(ids))
    trimmed = trimmed + #ids
  end
end

for b = 1, 5 do
  if (trim_all or touched[b]) and trimmed < budget then
    local cutoff = string.format('(%d', now - tonumber(ARGV[3 + b]))
    drop(KEYS[b], redis.call('ZRANGEBYSCORE', KEYS[b], '-inf', cutoff, 'LIMIT', 0, budget - trimmed))
    local excess = redis.call('ZCARD', KEYS[b]) - cap
    if excess > 0 and trimmed < budget then
      drop(KEYS[b], redis.call('ZRANGE', KEYS[b], 0, math.min(excess, budget - trimmed) - 1))
    end
  end
end

return {written, stale, operator, trimmed, unknown}
