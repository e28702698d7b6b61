"""Key names an action builds from stored data: a forged value never chooses where a write
goes.

A queue or worker name read from a job is checked before a key is named after it: it could be
a name (:func:`text_problem`), its keys keep the system's shapes (each system's
``queue_name_problem``) and it is a known queue or worker (each system's actions). A failure
refuses the action, audited by :func:`refuse`. Each system's keys: docs/<system>.md, actions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobbridge.adapters.fields import MAX_NAME_CHARS
from jobbridge.adapters.outcomes import result, run_script
from jobbridge.model import Action, ActionResult, Outcome

if TYPE_CHECKING:
    from jobbridge.adapters.operator_log import OperatorLog
    from jobbridge.adapters.scripts import BoundScripts

#: characters no queue or worker name a system writes holds: C0 controls, DEL, C1 controls
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: characters of a name shown in a refusal
SHOWN_CHARS = 80
#: the reply codes of lua/any_refuse.lua (jobbridge.adapters.outcomes.CODES)
_CODES = {Outcome.WRONG_STATE: -1, Outcome.CORRUPT: -2}


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an action does not name a key after a stored value."""

    #: corrupt: the value can never name one of the system's keys; wrong_state: it could,
    #: but it is not one of this source's queues (or workers) now
    outcome: Outcome
    #: the operator's sentence (ends "nothing was changed.")
    message: str


def shown(name: str) -> str:
    """A stored name for a message: quoted, escapes for control characters and bytes that
    are not UTF-8, cut to ``SHOWN_CHARS``."""
    if len(name) > SHOWN_CHARS:
        return repr(name[:SHOWN_CHARS]) + f"… ({len(name):,} characters)"
    return repr(name)


def text_problem(name: str) -> str | None:
    """Why this text cannot name a queue or worker of any system; None when it can.

    ``name`` comes from ``key_text``: bytes that are not UTF-8 are lone surrogates."""
    if not name:
        return "it is empty"
    if len(name) > MAX_NAME_CHARS:
        return f"it is over {MAX_NAME_CHARS} characters"
    if _CONTROL.search(name):
        return "it holds control characters"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not UTF-8 text"
    return None


def forged(what: str, name: str, problem: str) -> Refusal:
    """A stored value that can never name one of the system's keys (corrupt)."""
    return Refusal(
        Outcome.CORRUPT,
        f"The stored {what} {shown(name)} cannot be used: {problem}. Nothing was changed.",
    )


def unknown(what: str, name: str, known_as: str) -> Refusal:
    """A stored value that is not one of the source's queues or workers (wrong state)."""
    return Refusal(
        Outcome.WRONG_STATE,
        f"The stored {what} {shown(name)} is not one of this source's {known_as}: "
        "nothing was changed.",
    )


async def refuse(
    scripts: BoundScripts,
    operator: OperatorLog,
    action: Action,
    job_id: str,
    actor: str,
    refusal: Refusal,
) -> ActionResult:
    """Audit the refusal (``lua/any_refuse.lua``, which writes nothing else) and return it."""
    await run_script(
        scripts["refuse"],
        action=action,
        job_id=job_id,
        actor=actor,
        keys=[],
        args=[action.value, _CODES[refusal.outcome], refusal.outcome.value, refusal.message],
        operator=operator,
    )
    return result(action, refusal.outcome, job_id, refusal.message)
