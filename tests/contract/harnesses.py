"""The harness of every system the contract tests know, by registry name, and the systems
they run: every registered one (jobbridge.adapters.registry); one without a harness fails."""

from __future__ import annotations

from collections.abc import Callable

from jobbridge.adapters import registry
from tests.autumn.harness import AutumnHarness
from tests.celery.harness import CeleryHarness
from tests.contract.harness import SystemHarness
from tests.rq.harness import RqHarness
from tests.toy_system.harness import ToyHarness
from tests.toy_system.install import installed

#: system name -> harness constructor (takes the test database's URL)
HARNESSES: dict[str, Callable[[str], SystemHarness]] = {
    "autumn": AutumnHarness,
    "rq": RqHarness,
    "celery": CeleryHarness,
    # the fourth system, registered from outside jobbridge/ (tests/toy_system/)
    "toy": ToyHarness,
}


def registered_systems() -> tuple[str, ...]:
    """Every system the registry lists, with the toy distribution installed (it is installed
    only while listed here and while its harness is open, so no other test sees it)."""
    with installed():
        return tuple(registry.names())
