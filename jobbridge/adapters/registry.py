"""The registry of systems: what each system tells the rest of jobbridge about itself.

A system's package exports one :class:`SystemSpec` (``<package>/system.py``: ``SYSTEM``). The
built-in ones are imported lazily, on the first look-up (their modules import the shared ones
in this package); installed distributions add theirs under the entry-point group
``jobbridge.systems``. docs/plugins.md describes the interface with a worked example.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from jobbridge.errors import ConfigError

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobbridge.adapters.contract import JobAdapter
    from jobbridge.census.model import CensusPlan
    from jobbridge.model import Action, Worker
    from jobbridge.settings import Role, SourceConfig

#: the entry-point group an installed distribution declares its systems under
ENTRY_POINT_GROUP = "jobbridge.systems"
#: the built-in systems, in the order they are listed, detected and offered
BUILT_IN = (
    "jobbridge.adapters.autumn.system:SYSTEM",
    "jobbridge.adapters.rq.system:SYSTEM",
    "jobbridge.adapters.celery.system:SYSTEM",
)


@dataclass(frozen=True, slots=True)
class Detected:
    """A system found in a Redis, with the key prefix it uses."""

    system: str
    key_prefix: str
    #: why we think so, for doctor's report
    evidence: str

    @property
    def supported(self) -> bool:
        return self.system in names()


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigKey:
    """A key of a ``[[sources]]`` table that only this system's sources take."""

    name: str
    #: (raw value, where it came from) -> checked value; raises ConfigError
    parse: Callable[[object, str], object]
    #: the SourceConfig field it fills; None keeps it in ``SourceConfig.options``
    field: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmStep:
    """The second, explicit step an action asks for on a page (no JavaScript needed).

    Each text is trusted HTML written in the system's package: pages put it in as it is.
    """

    #: the button that opens the step ("Stop…")
    summary: str
    #: the question, as trusted HTML of the system's package; ``{worker}`` is replaced by the
    #: job's worker, escaped
    html: str
    #: the button that confirms it ("Stop job")
    button: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionSpec:
    """One action a system's sources offer, with its wording."""

    action: Action
    #: None: one click; else the confirmation a page shows first
    confirm: ConfirmStep | None = None
    #: what the CLI's help and the API document add for this system (see jobbridge.cli)
    cli_note: str = ""
    api_note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AclGrants:
    """What a jobbridge Redis user needs for this system's sources (see jobbridge.acl)."""

    #: commands granted for any role besides the shared reads
    commands: tuple[str, ...] = ()
    #: channel patterns (without ``&``) of one source for a role
    channels: Callable[[SourceConfig, Role], list[str]] | None = None
    #: a viewer's whole rule list when this system needs its own: (its sources, the shared
    #: read commands, the channel rules of every source, whether key selectors exist)
    viewer_rules: (
        Callable[[Sequence[SourceConfig], Sequence[str], Sequence[str], bool], list[str]] | None
    ) = None
    #: comment lines saying what such a viewer line allows: (its sources, selectors)
    viewer_notes: Callable[[Sequence[SourceConfig], bool], list[str]] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchSpec:
    """How the shared search (jobbridge.search) matches this system's jobs, and its words."""

    #: keys of ``JobRecord.extra`` that match a query exactly (Celery's ``root_id``), beside
    #: the id, correlation id and principal id every system's rows match
    extras: tuple[str, ...] = ()
    #: what a search of one source reads, in the system's words (pages show it with the counts)
    covers: str = "the first page of each list the dashboard shows, and a look-up of the id"


#: the columns a job list may have between its Job and Actions columns, in display order
#: (jobbridge.web.job_columns says what fills each)
LIST_COLUMNS = (
    "enqueued",
    "started",
    "finished",
    "runtime",
    "wait",
    "attempts",
    "worker",
    "principal",
    "correlation",
    "error",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptsSpec:
    """What a system's "attempts" are, in its own words (the Attempts column and ``show``)."""

    #: the column's heading
    label: str = "Attempts"
    #: what the numbers mean, for the heading's hover text and the docs
    means: str = "the attempt a job is on, of the most it may make"


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemSpec:
    """Everything jobbridge outside the system's package knows of the system."""

    #: the ``system`` of a source, lower case
    name: str
    #: how pages and messages name it
    title: str
    #: key prefix of a source without ``key_prefix``; None: no prefix ("")
    default_key_prefix: str | None
    #: the source's adapter: (config, client, the result backend's client or None)
    build: Callable[[SourceConfig, Redis, Redis | None], JobAdapter]
    #: what of the system a Redis holds (bounded work; NOPERM probes count as absent)
    detect: Callable[[Redis], Awaitable[list[Detected]]] | None = None
    #: ``doctor``'s checks of one source: (config, broker client, results client or None)
    #: -> lines saying what is wrong and what to change (bounded work; never per request)
    doctor: Callable[[SourceConfig, Redis, Redis | None], Awaitable[list[str]]] | None = None
    #: keys only this system's sources take
    config_keys: tuple[ConfigKey, ...] = ()
    #: other names of ``redis_url`` in a source table (Celery's ``broker_url``)
    url_aliases: tuple[str, ...] = ()
    #: a key prefix may be any string (else non-empty, no spaces, no trailing ':')
    free_key_prefix: bool = False
    acl: AclGrants = field(default_factory=AclGrants)
    #: the actions of its jobs beyond retry, cancel and discard's one click, with wording
    actions: tuple[ActionSpec, ...] = ()
    #: the columns its rows fill (``JobRecord`` fields), for readers of the model
    columns: tuple[str, ...] = ()
    #: the list columns its sources' pages may have (of ``LIST_COLUMNS``); a page shows
    #: those a row of it fills. Empty: every one of ``LIST_COLUMNS``
    list_columns: tuple[str, ...] = ()
    #: what its attempts are
    attempts: AttemptsSpec = field(default_factory=AttemptsSpec)
    #: its own status words, each with the shared status jobbridge shows for it; rows show
    #: the system's word beside the shared one where they differ
    status_words: tuple[tuple[str, str], ...] = ()
    #: whether one of its workers is busy (True), idle (False) or neither (None: dead,
    #: offline, suspended), in the system's own words; None: the comparison's default rule
    #: (a current job or "busy" is busy, "idle" is idle; see jobbridge.compare)
    worker_busy: Callable[[Worker], bool | None] | None = None
    #: how a search matches its jobs and what it covers
    search: SearchSpec = field(default_factory=SearchSpec)
    #: how a census reads one of its queues: (adapter, queue) -> the plan (jobbridge.census);
    #: None: its sources have no queue census
    census: Callable[[JobAdapter, str], CensusPlan] | None = None

    def shown_columns(self) -> tuple[str, ...]:
        """The list columns its pages may have, in display order."""
        declared = set(self.list_columns or LIST_COLUMNS)
        return tuple(c for c in LIST_COLUMNS if c in declared)

    def action(self, action: Action) -> ActionSpec | None:
        for spec in self.actions:
            if spec.action == action:
                return spec
        return None


_loaded: dict[str, SystemSpec] | None = None


def systems() -> dict[str, SystemSpec]:
    """Every registered system by name: the built-in ones first, then entry points'."""
    global _loaded
    if _loaded is None:
        found: dict[str, SystemSpec] = {}
        for target in BUILT_IN:
            module, _, attr = target.partition(":")
            _add(found, getattr(importlib.import_module(module), attr), target)
        for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            _add(found, point.load(), f"entry point {point.name} ({point.value})")
        _loaded = found
    return _loaded


def _add(found: dict[str, SystemSpec], spec: object, origin: str) -> None:
    if not isinstance(spec, SystemSpec):
        raise ConfigError(f"{origin}: is not a jobbridge SystemSpec")
    if spec.name in found:
        # A built-in or the first distribution keeps its name.
        return
    found[spec.name] = spec


def reload() -> None:
    """Look for entry points again on the next look-up (tests that install a system)."""
    global _loaded
    _loaded = None


def names() -> tuple[str, ...]:
    return tuple(systems())


def system(name: str) -> SystemSpec:
    """The system called ``name``.

    Raises:
        ConfigError: no system has that name.
    """
    spec = systems().get(name)
    if spec is None:
        raise ConfigError(f"system {name!r} is not supported (supported: {', '.join(names())})")
    return spec


def title(name: str) -> str:
    """How pages name a system; its name when it is not registered."""
    spec = systems().get(name)
    return spec.title if spec is not None else name


def fallback() -> SystemSpec:
    """The system ``--redis URL`` watches when detection finds nothing (the first one)."""
    return next(iter(systems().values()))


def action_notes(action: Action, kind: str) -> list[str]:
    """What each system adds to an action's help (``kind``: "cli" or "api"), in order."""
    notes: list[str] = []
    for spec in systems().values():
        found = spec.action(action)
        note = getattr(found, f"{kind}_note", "") if found is not None else ""
        if note:
            notes.append(note)
    return notes


def confirm_step(system_name: str, action: str) -> ConfirmStep | None:
    """The confirmation a system's pages show before an action; None: one click."""
    spec = systems().get(system_name)
    for found in spec.actions if spec is not None else ():
        if found.action == action:
            return found.confirm
    return None
