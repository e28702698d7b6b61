"""What every template may use, as one lazy ``ui`` object (each view passes ``Ui(request)``).

Lazy on purpose: the flash message is popped from the session (and the session cookie
rewritten) only when a page actually renders it, and a CSRF session is created only for pages
that show a form.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from jobbridge.adapters import ConfirmStep, confirm_step
from jobbridge.filters import FIELD_NAMES, FILTERABLE
from jobbridge.model import ListName, reachable_id
from jobbridge.web import keys
from jobbridge.web.auth import Principal
from jobbridge.web.responses import JOB_BY_QUERY, entry_query, id_query, path_unsafe
from jobbridge.web.sessions import FlashKind

#: the query parameters that page a source page's lists
_LIST_PAGES = frozenset(f"{name.value}_page" for name in ListName)
#: the query parameters that filter a source page's lists (``failed_name``...: see
#: jobbridge.web.filtered_lists)
_LIST_FILTERS = frozenset(f"{name.value}_{field}" for name in FILTERABLE for field in FIELD_NAMES)


class Ui:
    """Per-request template helpers: who is looking, CSRF token, flash, URLs."""

    def __init__(self, request: web.Request, *, here: str | None = None) -> None:
        self.request = request
        #: the page a form returns to, when it is not this request's URL (a fragment's rows
        #: return to the page that shows them)
        self._here = here
        settings = request.app[keys.SETTINGS]
        self.prefix = settings.server.prefix
        self.read_only = settings.server.read_only
        self.auth_enabled = settings.auth.enabled
        self.poll = f"{settings.server.poll_interval_s:g}s"

    def confirm_step(self, system: str, action: str) -> ConfirmStep | None:
        """How the job's system words the second step an action asks for (None: one click)."""
        return confirm_step(system, action)

    @property
    def principal(self) -> Principal | None:
        return self.request.get(keys.PRINCIPAL)

    @property
    def can_act(self) -> bool:
        """Whether to render action buttons (the server enforces the same on every POST)."""
        principal = self.principal
        return principal is not None and principal.can_operate and not self.read_only

    @cached_property
    def csrf_token(self) -> str:
        state = self.request.get(keys.SESSION)
        if state is None:
            return ""
        security = self.request.app[keys.SECURITY]
        return security.csrf_token(security.ensure_session(state))

    @cached_property
    def flash(self) -> tuple[FlashKind, str] | None:
        state = self.request.get(keys.SESSION)
        if state is None:
            return None
        return self.request.app[keys.SECURITY].pop_flash(state)

    @property
    def here(self) -> str:
        return self._here if self._here is not None else self.request.path_qs

    def url(self, name: str, query: dict[str, Any] | None = None, **parts: str) -> str:
        url = str(self.request.app.router[name].url_for(**parts))
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        return url

    def static(self, filename: str) -> str:
        resource = self.request.app.router["static"]
        assert isinstance(resource, web.StaticResource)
        return str(resource.url_for(filename=filename, append_version=True))

    def source_url(self, source: str, **query: Any) -> str:
        url = f"{self.prefix}/jobs/{quote(source, safe='')}"
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        return url

    def job_url(self, source: str, job_id: str, entry: str | None = None) -> str:
        """The job page of this exact id (and entry); "" for an id too long for any route."""
        return self._job_path(source, job_id, "", entry)

    def action_url(self, source: str, job_id: str, action: str, entry: str | None = None) -> str:
        return self._job_path(source, job_id, "/" + quote(action, safe=""), entry)

    def job_lookup_url(self, source: str) -> str:
        """Where a GET form with a ``find`` field opens that job's page."""
        return f"{self.prefix}/jobs/{quote(source, safe='')}/{JOB_BY_QUERY}"

    def _job_path(self, source: str, job_id: str, tail: str, entry: str | None) -> str:
        if not reachable_id(job_id):
            return ""
        base = f"{self.prefix}/jobs/{quote(source, safe='')}/"
        if path_unsafe(job_id):
            return f"{base}{JOB_BY_QUERY}{tail}?{id_query(job_id, entry)}"
        return f"{base}{quote(job_id, safe='')}{tail}{entry_query(entry)}"

    def counters_url(self, source: str, reload: bool = False) -> str:
        url = f"{self.prefix}/jobs/{quote(source, safe='')}/counters"
        return url + "?reload=1" if reload else url

    # ---------------------------------------------------------------- a source page's tabs

    def selected_list(self, lists: Sequence[Any]) -> str:
        """The list a source page shows (its tab selected, the others hidden): ``?tab=``,
        else the list a pager link names (``<list>_page``), else the first that has jobs,
        else the first. ``lists`` are the page's list views (``.name``, ``.page.total``)."""
        names = [str(item.name) for item in lists]
        if not names:
            return ""
        query = self.request.query
        wanted = query.get("tab", "")
        if wanted in names:
            return wanted
        for name in names:
            if f"{name}_page" in query:
                return name
        return next((str(i.name) for i in lists if i.page.total), names[0])

    def _list_query(self) -> dict[str, str]:
        """The page's own list parameters (``<list>_page``, ``per_page``, the lists' filters),
        nothing else."""
        query = {
            key: value[:20]
            for key, value in self.request.query.items()
            if key == "per_page" or key in _LIST_PAGES
        }
        return {**query, **self.filter_query()}

    def filter_query(self, name: str | None = None) -> dict[str, str]:
        """The lists' filter parameters of this page (of list ``name`` only, when given)."""
        return {
            key: value[:400]
            for key, value in self.request.query.items()
            if key in _LIST_FILTERS
            and value.strip()
            and (name is None or key.startswith(f"{name}_"))
        }

    def tab_url(self, source: str, name: str) -> str:
        """The source page with this list's tab selected, keeping the page's paging."""
        return self.source_url(source, **{**self._list_query(), "tab": name})

    def list_url(self, source: str, name: str) -> str:
        """The fragment of one list's current page (the live refresh of its tab)."""
        query = self._list_query()
        wanted = {"page": query.get(f"{name}_page"), "per_page": query.get("per_page")}
        url = f"{self.prefix}/jobs/{quote(source, safe='')}/lists/{quote(name, safe='')}"
        shown = {k: v for k, v in wanted.items() if v is not None}
        shown.update(self.filter_query(name))
        return url + ("?" + urlencode(shown) if shown else "")

    @cached_property
    def rendered_at(self) -> str:
        """When this page was rendered (UTC, whole seconds): app.js counts relative times
        from it, so a browser's wrong clock does not shift them."""
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    # ---------------------------------------------------------------- bulk actions

    def bulk_url(self, source: str, run_id: str | None = None, tail: str = "") -> str:
        """The bulk page of a source (POST: start a dry run), of one run, or a run's
        ``confirm`` / ``cancel`` / ``progress`` URL."""
        url = f"{self.prefix}/bulk/{quote(source, safe='')}"
        if run_id is not None:
            url += "/" + quote(run_id, safe="")
            if tail:
                url += "/" + quote(tail, safe="")
        return url
