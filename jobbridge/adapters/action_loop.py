"""The loop every action runs: plan, run the script, plan again when the script says the job
changed since it was read, a bounded number of times.

A plan is read in Python (where the job is, what it names); the script re-checks it in Redis
and answers "read again" (``outcomes.CHANGED``) when it moved, so an action is atomic with
respect to the system's workers whatever happened between the read and the script.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobbridge.adapters.keyguard import Refusal, refuse
from jobbridge.adapters.outcomes import changed_too_often, run_script
from jobbridge.model import Action, ActionResult, Outcome

if TYPE_CHECKING:
    from jobbridge.adapters.operator_log import OperatorLog
    from jobbridge.adapters.scripts import BoundScripts

#: Tries of an action whose script found the job changed since it was read.
ACTION_TRIES = 3


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """One run of an action's script: its own KEYS and ARGV after the shared ones."""

    keys: Sequence[str]
    args: Sequence[str | int | bytes]
    #: the system's sentences for the reply (``outcomes.outcome``)
    words: Mapping[str | Outcome, str] | None = None
    #: Unix ms the plan already stamped into what it sends; None: now
    now: int | None = None
    #: the kind of entry acted on when not the job itself (``OperatorKeys.lifecycle``)
    entry: str = ""
    #: the script to run when not the one named after the action
    script: str = ""


#: what one try does: run a script, answer before any script runs, or refuse (audited) a
#: stored value that would name a key that is not the source's
Plan = ScriptCall | ActionResult | Refusal


async def act(
    scripts: BoundScripts,
    operator: OperatorLog,
    action: Action,
    job_id: str,
    actor: str,
    plan: Callable[[], Awaitable[Plan]],
    *,
    tries: int = ACTION_TRIES,
) -> ActionResult:
    """Plan and run the action's script until it answers, at most ``tries`` times; then the
    job changed too often (``outcomes.changed_too_often``)."""
    for _ in range(tries):
        planned = await plan()
        if isinstance(planned, ActionResult):
            return planned
        if isinstance(planned, Refusal):
            return await refuse(scripts, operator, action, job_id, actor, planned)
        result = await run_script(
            scripts[planned.script or action.value],
            action=action,
            job_id=job_id,
            actor=actor,
            keys=planned.keys,
            args=planned.args,
            operator=operator,
            words=planned.words,
            now=planned.now,
            entry=planned.entry,
        )
        if result is not None:
            return result
    return changed_too_often(action, job_id)
