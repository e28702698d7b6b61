"""Action replies: one table from a script's reply code to an outcome (lua/_prelude.lua states
the codes), one set of messages, one runner for a script call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from jobbridge.adapters.fields import MAX_NAME_CHARS, cap, key_text, now_ms, text
from jobbridge.adapters.operator_log import script_argv
from jobbridge.model import Action, ActionResult, Outcome

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

    from jobbridge.adapters.operator_log import OperatorLog

# Every action script returns {code, detail}:
#   1  done         the new id (retry), the worker asked (stop), else ""
#   0  not_found    ""
#  -1  wrong_state  a word ("running", "not failed", ...) or the lifecycle entry
#  -2  corrupt      ""
#  -3  conflict     what stands in the way (e.g. the holder of a unique lock)
#  -4  (changed)    the state changed since Python read it: read again and retry
#  -5  corrupt      a key holds another type than the action needs: the reply is
#                   {-5, key, its type, the type expected} and nothing changed
CODES: Mapping[int, Outcome] = {
    1: Outcome.DONE,
    0: Outcome.NOT_FOUND,
    -1: Outcome.WRONG_STATE,
    -2: Outcome.CORRUPT,
    -3: Outcome.CONFLICT,
}
#: the reply of a script whose re-check found the state changed since Python read it
CHANGED = -4
#: the reply of a script that found a key of another type than it needs (jb_wrong_type)
WRONG_TYPE = -5

#: what Redis's TYPE answers, in words
TYPE_WORDS: Mapping[str, str] = {
    "string": "a string",
    "list": "a list",
    "hash": "a hash",
    "set": "a set",
    "zset": "a sorted set",
    "stream": "a stream",
}

_DONE: Mapping[Action, str] = {
    Action.CANCEL: "Canceled job {id}.",
    Action.RETRY: "Retried job {id} as {detail}.",
    Action.DISCARD: "Discarded job {id}.",
    Action.STOP: "Asked worker {detail} to stop job {id}; it ends as stopped once the worker "
    "acts on the request.",
    # a system's own words name its broadcast (Celery's: jobbridge.adapters.celery.actions)
    Action.REVOKE: "Sent a revoke for job {id} to {detail}; a worker that holds it discards "
    "it instead of running it.",
}
_NOT_FOUND: Mapping[Action, str] = {
    Action.CANCEL: "Job {id} not found.",
    Action.RETRY: "Job {id} is not in the failed list.",
    Action.DISCARD: "Job {id} is not in the failed list.",
    Action.STOP: "Job {id} not found.",
    Action.REVOKE: "Job {id} not found.",
}
#: wrong_state details every system's scripts use
WORDS: Mapping[str, str] = {
    "running": "Job {id} is already running; only waiting jobs can be canceled.",
    "not failed": "Job {id} is not in the failed list.",
    "not running": "Job {id} is not running; only running jobs can be stopped.",
    "no worker": "Job {id} has no worker recorded; there is nobody to ask to stop it.",
}


def result(
    action: Action, outcome: Outcome, job_id: str, message: str, new_id: str | None = None
) -> ActionResult:
    return ActionResult(
        action=action, outcome=outcome, job_id=job_id, new_id=new_id, message=message
    )


def outcome(
    action: Action,
    job_id: str,
    code: int,
    detail: str,
    operator: OperatorLog,
    words: Mapping[str | Outcome, str] | None = None,
) -> ActionResult:
    """The result of one script reply, worded for the operator.

    ``words`` holds a system's own sentences, by wrong-state detail word or by outcome
    ("{id}" and "{detail}" are filled in), or by "done:<action>" / "not_found:<action>" for
    a success or an unknown job worded its own way; the shared ones cover the rest.
    """
    kind = CODES.get(code, Outcome.CONFLICT)
    fill = {"id": job_id, "detail": detail}
    own = words or {}
    if kind is Outcome.DONE:
        new_id = detail if action is Action.RETRY else None
        template = own.get(f"done:{action.value}") or _DONE[action]
        return result(action, kind, job_id, template.format_map(fill), new_id)
    if kind is Outcome.NOT_FOUND:
        template = own.get(f"not_found:{action.value}") or _NOT_FOUND[action]
        return result(action, kind, job_id, template.format_map(fill))
    known: dict[str | Outcome, str] = {**WORDS, **own}
    if detail and detail in known:
        return result(action, kind, job_id, known[detail].format_map(fill))
    if kind in own:
        return result(action, kind, job_id, own[kind].format_map(fill))
    if kind is Outcome.WRONG_STATE:
        message = operator.already_handled(job_id, detail)
        return result(
            action, kind, job_id, message or f"Job {job_id} is not in the expected state."
        )
    if kind is Outcome.CORRUPT:
        return result(
            action,
            kind,
            job_id,
            f"Job {job_id}'s stored record is invalid; the {action.value} does not apply to it as "
            "it is.",
        )
    return result(action, kind, job_id, f"Job {job_id} was not changed: {detail or 'conflict'}.")


async def run_script(
    script: AsyncScript,
    *,
    action: Action,
    job_id: str,
    actor: str,
    keys: Sequence[str],
    args: Sequence[str | int | bytes],
    operator: OperatorLog,
    words: Mapping[str | Outcome, str] | None = None,
    now: int | None = None,
    entry: str = "",
) -> ActionResult | None:
    """Run one action script with the shared KEYS and ARGV first (lua/_prelude.lua), then
    its own ``keys`` and ``args``; None when it found the state changed since it was read.
    ``now`` (Unix ms) when the caller already stamped what it sends; ``entry`` the kind of
    entry acted on when not the job itself (its lifecycle key: ``OperatorKeys.lifecycle``)."""
    shared_argv = script_argv(now_ms() if now is None else now, actor, operator.source, job_id)
    reply = await script(
        keys=[*operator.keys.script_keys(job_id, entry), *keys], args=[*shared_argv, *args]
    )
    code, detail = int(reply[0]), text(reply[1]) or ""
    if code == CHANGED:
        return None
    if code == WRONG_TYPE:
        return wrong_type(action, job_id, reply[1], reply[2], reply[3])
    return outcome(action, job_id, code, detail, operator, words)


def wrong_type_words(key: bytes | str, actual: bytes | str, expected: bytes | str) -> str:
    """ "key K is a string, expected a list" (the key capped: it may hold a job id)."""
    have, want = key_text(actual), key_text(expected)
    name = cap(key_text(key), MAX_NAME_CHARS)
    return f"key {name} is {TYPE_WORDS.get(have, have)}, expected {TYPE_WORDS.get(want, want)}"


def wrong_type(
    action: Action, job_id: str, key: bytes | str, actual: bytes | str, expected: bytes | str
) -> ActionResult:
    """The refusal of a script that found a key of another type than it needs."""
    return result(
        action,
        Outcome.CORRUPT,
        job_id,
        f"The {action.value} of job {job_id} was refused: "
        f"{wrong_type_words(key, actual, expected)}; nothing was changed.",
    )


def changed_too_often(action: Action, job_id: str) -> ActionResult:
    return result(
        action,
        Outcome.CONFLICT,
        job_id,
        f"Job {job_id}'s record kept changing while jobbridge read it; the {action.value} "
        "was not applied. Try again.",
    )
