"""The harness of every system the contract tests know, by registry name, and the systems
they run: every registered one (jobbridge.adapters.registry), with or without a harness."""

from __future__ import annotations

from collections.abc import Callable

from tests.autumn.harness import AutumnHarness
from tests.celery.harness import CeleryHarness
from tests.contract.harness import SystemHarness
from tests.rq.harness import RqHarness

#: system name -> harness constructor (takes the test database's URL)
HARNESSES: dict[str, Callable[[str], SystemHarness]] = {
    "autumn": AutumnHarness,
    "rq": RqHarness,
    "celery": CeleryHarness,
}


def registered_systems() -> tuple[str, ...]:
    """Every system the registry lists; the built-in three until the registry exists."""
    try:
        from jobbridge.adapters import registry  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return ("autumn", "rq", "celery")
    return tuple(registry.names())
