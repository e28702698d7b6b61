"""Failed sign-ins per client address: after too many, that address waits.

Tokens may be short when written by hand (``token = "..."`` for local use), so guessing must
be slow. Counting lives in memory, per process: it resets on restart, which only helps an
attacker who can also restart the server.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

#: failed sign-ins from one address within the window before it must wait (the default of
#: ``[auth] max_failed_sign_ins``)
MAX_FAILURES = 10
#: the sliding window, in seconds
WINDOW_S = 60.0
#: addresses remembered at once; the least recently failing are forgotten first, so a flood of
#: addresses costs bounded memory
MAX_CLIENTS = 10_000


class SignInThrottle:
    """A sliding window of failed sign-ins per client address; ``max_failures=0`` turns it off."""

    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window_s: float = WINDOW_S,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_clients = max_clients
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def wait_s(self, client: str) -> int:
        """Whole seconds ``client`` must wait before its next attempt counts; 0 when it may try."""
        failures = self._recent(client)
        if not self.max_failures or failures is None or len(failures) < self.max_failures:
            return 0
        return max(1, math.ceil(failures[0] + self.window_s - self._clock()))

    def failed(self, client: str) -> None:
        """Count one failed attempt by ``client``."""
        if not self.max_failures:
            return
        failures = self._recent(client)
        if failures is None:
            failures = self._failures[client] = deque(maxlen=self.max_failures)
        failures.append(self._clock())
        self._failures.move_to_end(client)
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)

    def __len__(self) -> int:
        return len(self._failures)

    def _recent(self, client: str) -> deque[float] | None:
        failures = self._failures.get(client)
        if failures is None:
            return None
        horizon = self._clock() - self.window_s
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        return failures
