"""A bulk run as pages, the API and the CLI show it."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from jobbridge.errors import JobbridgeError
from jobbridge.filters import FILTERABLE, JobFilter
from jobbridge.model import Action, JobRecord, ListName, Outcome, api

#: the actions a bulk run takes
BULK_ACTIONS = (Action.RETRY, Action.DISCARD, Action.CANCEL)
#: most jobs one run acts on; more matches are left (``capped``)
MAX_BULK_JOBS = 100_000
#: most rows one run's matching looks at (a list longer than this is looked at this far)
MAX_LOOKED = 500_000
#: most ticked ids one run takes
MAX_TICKED = 1_000
#: matched rows kept as the dry run's sample
SAMPLE_SIZE = 20
#: jobs not acted on kept with their reason
MAX_SKIPS = 1_000


class BulkState(enum.StrEnum):
    """Where a bulk run is."""

    #: walking the list in bounded pages, collecting matching ids
    MATCHING = "matching"
    #: a dry run's end: count and sample known, waiting for confirm
    MATCHED = "matched"
    #: acting, in small batches, per-job Lua scripts (service.act)
    RUNNING = "running"
    DONE = "done"
    #: stopped midway by an operator; the rest untouched
    CANCELED = "canceled"
    #: could not go on (Redis gone, the process running it stopped): error says why
    FAILED = "failed"


#: states a run does not leave
FINISHED_STATES = frozenset({BulkState.DONE, BulkState.CANCELED, BulkState.FAILED})


@dataclass(frozen=True, slots=True, kw_only=True)
class BulkSkip:
    """A job not acted on, and why."""

    job_id: str
    outcome: str = field(
        metadata=api(
            "what its action did instead (not_found, wrong_state, conflict, corrupt, "
            "unavailable, forbidden)",
            values=[o for o in Outcome if o is not Outcome.DONE],
        )
    )
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BulkRun:
    """One bulk action: its dry run, then (once confirmed) its progress and outcomes."""

    id: str
    source: str
    action: Action = field(metadata=api("retry, discard or cancel", values=BULK_ACTIONS))
    list: ListName = field(metadata=api("the list it takes jobs from", values=FILTERABLE))
    filter: JobFilter
    ids: tuple[str, ...] = field(
        metadata=api("the rows an operator ticked (the filter is then not used); empty: by filter")
    )
    actor: str
    created_at: datetime
    state: BulkState
    looked_at: int = field(metadata=api("rows examined so far"))
    matched: int = field(metadata=api("rows that matched: the count an operator confirms"))
    capped: bool = field(
        metadata=api(f"more matched than {MAX_BULK_JOBS:,}: only the first were taken")
    )
    sample: tuple[JobRecord, ...] = field(metadata=api(f"up to {SAMPLE_SIZE} matched rows"))
    acted: int = field(metadata=api("jobs acted on so far (any outcome)"))
    outcomes: Mapping[str, int] = field(metadata=api("outcome (done, wrong_state, ...) -> jobs"))
    skipped: tuple[BulkSkip, ...] = field(
        metadata=api(f"jobs not done and why (the first {MAX_SKIPS:,})")
    )
    started_at: datetime | None = field(metadata=api("when acting began"))
    finished_at: datetime | None
    canceled_by: str | None
    error: str | None

    @property
    def progress(self) -> float:
        """0..1: jobs acted on of those matched (0 while matching)."""
        if self.state is BulkState.DONE:
            return 1.0
        if self.matched <= 0 or self.state in (BulkState.MATCHING, BulkState.MATCHED):
            return 0.0
        return min(1.0, self.acted / self.matched)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def done(self) -> int:
        return self.outcomes.get(Outcome.DONE.value, 0)


class BulkError(JobbridgeError):
    """A bulk request that cannot be taken; the message says why."""


class BulkNotFound(BulkError):
    """No such run (never, or expired)."""


class BulkWrongState(BulkError):
    """The run is not where the request needs it (confirm of a run not MATCHED, ...)."""


class BulkCountMismatch(BulkError):
    """The count confirmed is not the count the dry run matched."""


class BulkForbidden(BulkError):
    """Read-only mode (or a role): no bulk action."""


class BulkBusy(BulkError):
    """This process runs as many bulk runs as it may."""
