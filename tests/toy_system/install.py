"""The toy distribution, installed for as long as a test needs it.

:func:`installed` puts tests/toy_system/ on ``sys.path`` as ``pip install`` would, so the
registry finds the ``jobbridge.systems`` entry point of its checked-in dist-info through
importlib.metadata; afterwards it is gone, so no other test sees a fourth system.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from jobbridge.adapters import registry

TOY_DIR = Path(__file__).resolve().parent


@contextmanager
def installed() -> Iterator[None]:
    """The toy distribution importable and registered; gone again afterwards."""
    sys.path.insert(0, str(TOY_DIR))
    importlib.invalidate_caches()
    registry.reload()
    try:
        yield
    finally:
        with suppress(ValueError):
            sys.path.remove(str(TOY_DIR))
        for name in [m for m in sys.modules if m.partition(".")[0] == "toy_jobbridge"]:
            del sys.modules[name]
        importlib.invalidate_caches()
        registry.reload()
