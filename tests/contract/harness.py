"""What the contract tests (tests/contract/) need from each system: its harness.

The contract tests run every registered system through the same behaviours, over the HTTP API
of a real app with one source of the system. Only a harness knows the system: it makes the
system hold jobs in a given state with the system's own tools (its library or emulator, never
jobbridge), counts them as the system itself would, and writes one record jobbridge cannot
read. The assertions are shared and know nothing of any system.

To add a system: write a class that satisfies :class:`SystemHarness` (tests/<system>/harness.py
for a built-in one; anywhere importable for a plugin) and add its constructor to
``HARNESSES`` in tests/contract/harnesses.py under the system's registry name. A registered
system without a harness fails every contract test; it is never skipped. A plugin's
distribution must be importable (on ``sys.path``, found by the registry) when tests are
collected: its harness module may arrange that.

A harness is built once per test with the URL of the test's own empty Redis database and
closed after it. Its methods are synchronous: they use the system's own (blocking) clients.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Protocol

from jobbridge.settings import SourceConfig


class State(enum.StrEnum):
    """A state a harness can put a job in; each value is the dashboard list it shows in."""

    ENQUEUED = "enqueued"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


#: the states every harness must be able to seed: cancel needs a waiting job, retry and
#: discard a terminally failed one
REQUIRED_STATES = frozenset({State.ENQUEUED, State.FAILED})


class SystemHarness(Protocol):
    """One system, as the contract tests drive it."""

    #: the system's name in the registry (``SourceConfig.system``)
    system: str
    #: the states :meth:`seed` can produce (at least :data:`REQUIRED_STATES`); a state the
    #: system cannot reach without a worker process (Celery's held ETA tasks) is left out
    states: frozenset[State]

    def source(self, name: str) -> SourceConfig:
        """The config of one source of this system on the harness's database, as an operator
        would write it (queues named where the system takes them, so nothing waits on
        discovery)."""
        ...

    def seed(self, wanted: Mapping[State, int]) -> dict[State, list[str]]:
        """Make the system hold ``wanted[state]`` more jobs in each state, through its own
        library or emulator, as its workers and producers would leave them; their ids by state.

        Failed jobs must be retryable (the system keeps what a retry needs)."""
        ...

    def seed_tagged(
        self, state: State, count: int, *, correlation_id: str, principal_id: str
    ) -> list[str]:
        """Like :meth:`seed` for one state, with jobs whose payload carries these ids where
        the system's producers put them (top-level payload fields, keyword arguments), so
        jobbridge reads them as the job's ``correlation_id`` and ``principal_id``; their ids.
        """
        ...

    def counts(self) -> dict[State, int]:
        """The system's own count of the jobs in each state (every :class:`State`), read with
        its own API or keys and independently of jobbridge: what the counters must equal."""
        ...

    def hostile(self) -> State:
        """Write one entry jobbridge cannot read into the list of one state (a malformed
        record, message or hash where a job should be); that state. The dashboard must show it
        as a flagged row (``problem`` set), not fail and not hide the other jobs."""
        ...

    def close(self) -> None:
        """Release the harness's clients."""
        ...
