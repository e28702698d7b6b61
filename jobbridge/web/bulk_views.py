"""Bulk pages (issue 19): a source page's bulk form starts a dry run, its page shows the count,
a sample and what will happen, an operator confirms the count, and the page follows the run's
progress (an htmx-polled fragment) to its summary.

Roles, CSRF and read-only mode as for single actions: anyone who may see the page may start a
dry run; confirming and cancelling need an operator, and read-only mode refuses them.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from jobbridge.bulk.model import (
    BulkCountMismatch,
    BulkError,
    BulkForbidden,
    BulkNotFound,
    BulkRun,
    BulkState,
    BulkWrongState,
)
from jobbridge.filters import FIELD_NAMES, FILTERABLE, FilterError, JobFilter, parse_filter
from jobbridge.model import Action, ListName
from jobbridge.web import keys
from jobbridge.web.context import Ui
from jobbridge.web.rendering import render
from jobbridge.web.responses import HttpError, redirect, route_param

#: the actions each filterable list's bulk form offers
LIST_ACTIONS = {
    ListName.FAILED: (Action.RETRY, Action.DISCARD),
    ListName.ENQUEUED: (Action.CANCEL,),
    ListName.SCHEDULED: (Action.CANCEL,),
}
#: most ticked rows one form takes
MAX_TICKED_FORM = 1000

#: what an action does to each job, in words
_EFFECT = {
    Action.RETRY: "each is enqueued again under a new id; the failed entry stays, marked retried",
    Action.DISCARD: "each failed entry is removed for good",
    Action.CANCEL: "each is taken off its queue before a worker claims it; one a worker "
    "already took is left and said so",
}


def _text(form: Any, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _run_param(request: web.Request) -> str:
    run_id = request.match_info["run"]
    if len(run_id) > 100:
        raise HttpError(404, "not_found", "No such bulk run.")
    return run_id


def _refuse_unless_operator(request: web.Request, what: str) -> None:
    principal = request[keys.PRINCIPAL]
    if not principal.can_operate:
        raise HttpError(
            403,
            "forbidden",
            f"Your role ({principal.role}) may see a dry run but not {what} it.",
        )
    if request.app[keys.SETTINGS].server.read_only:
        raise HttpError(403, "forbidden", "Read-only mode: actions are off.")


def _bulk_error(error: BulkError, source: str) -> HttpError:
    if isinstance(error, BulkNotFound):
        return HttpError(404, "not_found", str(error), source=source)
    if isinstance(error, BulkForbidden):
        return HttpError(403, "forbidden", str(error), source=source)
    if isinstance(error, BulkCountMismatch | BulkWrongState):
        return HttpError(409, "conflict", str(error), source=source)
    return HttpError(409, "bulk", str(error), source=source)


async def start(request: web.Request) -> web.StreamResponse:
    """POST a source page's bulk form: start a dry run and show it (303)."""
    source = route_param(request, "source")
    service = request.app[keys.SERVICE]
    service.adapter(source)
    form = await request.post()
    raw_list = _text(form, "list")
    if raw_list not in {n.value for n in FILTERABLE}:
        raise HttpError(
            400, "bad_request", "Bulk actions take the failed, enqueued or scheduled list."
        )
    which = ListName(raw_list)
    action_text, _, scope = _text(form, "bulk").partition(":")
    allowed = LIST_ACTIONS[which]
    if action_text not in {a.value for a in allowed} or scope not in (
        "selected",
        "matches",
        "queue",
    ):
        raise HttpError(400, "bad_request", f"No such bulk action on the {which.value} list.")
    action = Action(action_text)
    ids: tuple[str, ...] = ()
    try:
        job_filter = parse_filter({k: _text(form, k) for k in FIELD_NAMES})
    except FilterError as error:
        raise HttpError(400, "bad_filter", str(error), source=source) from None
    if scope == "selected":
        ids = tuple(dict.fromkeys(v for v in form.getall("ids", []) if isinstance(v, str) and v))
        if not ids:
            raise HttpError(400, "bad_request", "Tick at least one row, or act on every match.")
        if len(ids) > MAX_TICKED_FORM:
            raise HttpError(400, "bad_request", f"At most {MAX_TICKED_FORM} ticked rows at once.")
        job_filter = JobFilter()
    elif scope == "queue":
        queue = _text(form, "empty_queue").strip()
        if which is not ListName.ENQUEUED or not queue or len(queue) > 200:
            raise HttpError(
                400, "bad_request", "Empty a queue: name one queue of the enqueued list."
            )
        job_filter = JobFilter(queue=queue)
    actor = request[keys.PRINCIPAL].actor
    try:
        run = await service.bulk_start(source, action, which, job_filter, actor, ids=ids)
    except BulkError as error:
        raise _bulk_error(error, source) from None
    return redirect(Ui(request).bulk_url(source, run.id))


async def _read(request: web.Request) -> tuple[str, BulkRun]:
    source = route_param(request, "source")
    service = request.app[keys.SERVICE]
    service.adapter(source)
    run = await service.bulk_read(source, _run_param(request))
    if run is None:
        raise HttpError(404, "not_found", "No such bulk run (it may have expired).", source=source)
    return source, run


def _context(request: web.Request, source: str, run: BulkRun) -> dict[str, Any]:
    ui = Ui(request)
    what = "failed jobs" if run.list is ListName.FAILED else f"{run.list.value} jobs"
    count = run.matched
    plan = f"{run.action.value.capitalize()} {count:,} {what}: {_EFFECT[run.action]}."
    outcomes = sorted(run.outcomes.items(), key=lambda kv: (-kv[1], kv[0]))
    back = ui.source_url(source, tab=run.list.value)
    return {
        "ui": ui,
        "source": source,
        "run": run,
        "states": BulkState,
        "plan": plan,
        "outcomes": outcomes,
        "back": back,
        "percent": round(run.progress * 100),
    }


async def page(request: web.Request) -> web.StreamResponse:
    """A bulk run: its dry run (and the confirm form), its progress, its summary."""
    source, run = await _read(request)
    return await render("bulk.html", request, _context(request, source, run))


async def progress(request: web.Request) -> web.StreamResponse:
    """The run's polled progress fragment (it stops polling once the run is finished)."""
    source, run = await _read(request)
    return await render("_bulk_progress.html", request, _context(request, source, run))


async def confirm(request: web.Request) -> web.StreamResponse:
    """POST the count the operator confirms: act on exactly the dry run's jobs."""
    source = route_param(request, "source")
    request.app[keys.SERVICE].adapter(source)
    run_id = _run_param(request)
    _refuse_unless_operator(request, "confirm")
    form = await request.post()
    count_text = _text(form, "count").strip()
    if not count_text.isdigit() or len(count_text) > 9:
        raise HttpError(400, "bad_request", "Confirm with the count the dry run matched.")
    actor = request[keys.PRINCIPAL].actor
    try:
        await request.app[keys.SERVICE].bulk_confirm(source, run_id, int(count_text), actor)
    except BulkError as error:
        raise _bulk_error(error, source) from None
    return redirect(Ui(request).bulk_url(source, run_id))


async def cancel(request: web.Request) -> web.StreamResponse:
    """POST: stop a running bulk run; the jobs not reached stay untouched."""
    source = route_param(request, "source")
    request.app[keys.SERVICE].adapter(source)
    run_id = _run_param(request)
    _refuse_unless_operator(request, "cancel")
    await request.post()
    actor = request[keys.PRINCIPAL].actor
    try:
        await request.app[keys.SERVICE].bulk_cancel(source, run_id, actor)
    except BulkError as error:
        raise _bulk_error(error, source) from None
    return redirect(Ui(request).bulk_url(source, run_id))
