"""A deep RQ queue written fast: job hashes in RQ's layout and the queue list, made inside
Redis by a seeding script (one EVAL per 50,000 jobs), so a million jobs take seconds.

Each job's ``data`` is what RQ stores: ``zlib(pickle((func_name, None, args, kwargs)))``
(protocol 5, RQ's default serializer), and its hash has the fields RQ 2.x writes at enqueue
(spec/rq-redis.md §1). The test compares a sample enqueued with RQ's own ``Queue.enqueue``.
"""

from __future__ import annotations

import pickle
import zlib
from collections import Counter
from datetime import UTC, datetime

import redis

#: the functions of the seeded jobs and their share of every 100 jobs (different counts, so a
#: mix-up of two names shows)
NAMES = (
    ("app.tasks.send_email", 50),
    ("app.tasks.resize_image", 30),
    ("app.tasks.charge_card", 15),
    ("app.billing.Invoice.render", 4),
    ("app.tasks.rare", 1),
)
BATCH = 50_000

_SEED = """
-- KEYS[1]: the queue list; ARGV[1]: job key prefix; ARGV[2]: first index; ARGV[3]: count;
-- ARGV[4]: origin; ARGV[5]: enqueued_at; ARGV[6]: slots per cycle (100);
-- ARGV[7..]: for each of 100 slots, the name index; then per name: data, description
local first, count = tonumber(ARGV[2]), tonumber(ARGV[3])
local slots = tonumber(ARGV[6])
local names = (#ARGV - 6 - slots) / 2
local ids = {}
for i = first, first + count - 1 do
  local n = tonumber(ARGV[7 + (i % slots)])
  local id = string.format('job-%08d', i)
  redis.call('HSET', ARGV[1] .. id,
    'created_at', ARGV[5], 'data', ARGV[7 + slots + 2 * n], 'status', 'queued',
    'origin', ARGV[4], 'description', ARGV[8 + slots + 2 * n], 'enqueued_at', ARGV[5],
    'started_at', '', 'ended_at', '', 'last_heartbeat', ARGV[5], 'worker_name', '',
    'group_id', '', 'success_callback_name', '', 'failure_callback_name', '',
    'stopped_callback_name', '', 'timeout', '180', 'result_ttl', '500')
  ids[#ids + 1] = id
  if #ids == 1000 then
    redis.call('RPUSH', KEYS[1], unpack(ids))
    ids = {}
  end
end
if #ids > 0 then
  redis.call('RPUSH', KEYS[1], unpack(ids))
end
return count
"""


def slots() -> list[int]:
    """The name index of each of 100 consecutive jobs."""
    out: list[int] = []
    for index, (_, share) in enumerate(NAMES):
        out += [index] * share
    return out


def truth(count: int) -> Counter[str]:
    """How many of ``count`` seeded jobs carry each name."""
    per = slots()
    counts: Counter[str] = Counter()
    for i in range(count):
        counts[NAMES[per[i % 100]][0]] += 1
    return counts


def seed_rq_queue(client: redis.Redis, count: int, queue: str = "deep", prefix: str = "rq") -> None:
    """``count`` waiting jobs in RQ queue ``queue``, ids ``job-00000000`` on."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    blobs: list[bytes | str] = []
    for name, _ in NAMES:
        data = zlib.compress(pickle.dumps((name, None, (42, "x"), {"retry": True}), protocol=5))
        blobs += [data, f"{name}(42, 'x', retry=True)"]
    script = client.register_script(_SEED)
    client.sadd(f"{prefix}:queues", f"{prefix}:queue:{queue}")
    for first in range(0, count, BATCH):
        n = min(BATCH, count - first)
        args = [f"{prefix}:job:", first, n, queue, now, 100, *slots(), *blobs]
        script(keys=[f"{prefix}:queue:{queue}"], args=args)
