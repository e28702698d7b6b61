"""``/actuator/jobs``: Autumn's per-job-name counters across sources, from bounded reads
(docs/api.md); :data:`DESCRIPTION` is what the OpenAPI document says of it."""

from __future__ import annotations

from typing import Any

from jobbridge.service import JobService

#: the endpoint's description in the OpenAPI document
DESCRIPTION = """\
``/actuator/jobs``: Autumn's per-job-name counters, across sources, from bounded reads.

Autumn's own actuator keeps per-process counters in memory; a sidecar has none, so these are
computed from what one snapshot per source returns: the first 100 rows of the enqueued,
scheduled and running lists, and the whole completed (24 h) and failed (7 d) histories, which
the system bounds itself (Autumn: 1,000 entries each). Nothing else is read.

Per job name and source:

* ``queued``: rows on the first pages of the enqueued and scheduled lists (scheduled includes
  retry backoffs);
* ``in_flight``: rows on the first page of the running list;
* ``success``: rows of the completed list (last 24 h);
* ``failure``: rows whose latest attempt failed: retrying rows plus failed rows;
* ``dead_letter``: rows of the failed list (last 7 days);
* ``last_error``: the error of the newest such row (cut to 1,000 characters).

So the counts are exact for the histories and for a running set of up to 100 jobs. When a
list holds more entries than were read (a long queue), the counts are a sample: the source, and
every job name seen in it, is marked ``"approximate": true`` with ``"sample_size"`` = rows
read.
"""


async def actuator_jobs(service: JobService) -> dict[str, Any]:
    """The ``/actuator/jobs`` document (shape: :data:`DESCRIPTION`); the service
    reads every source and tallies (``jobbridge.tally``)."""
    return await service.job_name_counts()
