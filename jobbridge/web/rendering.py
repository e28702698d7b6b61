"""Pages rendered a few rows at a time, yielding to the event loop in between.

A source page of a hundred rows with long errors is a megabyte of HTML; rendered in one go it
would keep every other request waiting for a hundred milliseconds or more. Jinja renders a
template as a stream of small pieces (``Template.generate``), so the page is built from that
stream with a pause whenever a few milliseconds have gone by.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from jobbridge.pacing import Pacer

View = Callable[[web.Request], Awaitable[Mapping[str, Any]]]


async def render(
    name: str, request: web.Request, context: Mapping[str, Any], *, status: int = 200
) -> web.Response:
    """The template ``name`` rendered with ``context``, as an HTML response."""
    template = aiohttp_jinja2.get_env(request.app).get_template(name)
    pieces: list[str] = []
    pacer = Pacer()
    for piece in template.generate(context):
        pieces.append(piece)
        await pacer.tick()
    return web.Response(
        text="".join(pieces), status=status, content_type="text/html", charset="utf-8"
    )


def paced_template(name: str) -> Callable[[View], Callable[[web.Request], Awaitable[web.Response]]]:
    """Like ``aiohttp_jinja2.template``: the view returns the context, the page is rendered."""

    def wrap(view: View) -> Callable[[web.Request], Awaitable[web.Response]]:
        @functools.wraps(view)
        async def handler(request: web.Request) -> web.Response:
            return await render(name, request, await view(request))

        return handler

    return wrap
