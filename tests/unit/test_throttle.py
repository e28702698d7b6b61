"""The sign-in throttle: a sliding window per address, bounded memory."""

from __future__ import annotations

from jobbridge.web.throttle import SignInThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_waits_after_too_many_failures_and_only_that_address() -> None:
    clock = Clock()
    throttle = SignInThrottle(max_failures=3, window_s=60, clock=clock)
    for _ in range(2):
        throttle.failed("10.0.0.1")
        clock.now += 1
    assert throttle.wait_s("10.0.0.1") == 0
    throttle.failed("10.0.0.1")
    # The first failure was at 1000 and leaves the window at 1060; now is 1002.
    assert throttle.wait_s("10.0.0.1") == 58
    assert throttle.wait_s("10.0.0.2") == 0


def test_the_window_slides() -> None:
    clock = Clock()
    throttle = SignInThrottle(max_failures=2, window_s=10, clock=clock)
    throttle.failed("a")
    clock.now += 5
    throttle.failed("a")
    assert throttle.wait_s("a") == 5
    clock.now += 5  # the first failure has left the window
    assert throttle.wait_s("a") == 0
    throttle.failed("a")
    assert throttle.wait_s("a") == 5
    clock.now += 0.5
    assert throttle.wait_s("a") == 5  # rounded up, never 0 while still blocked
    clock.now += 20
    assert throttle.wait_s("a") == 0
    assert len(throttle) == 0  # forgotten once nothing is in its window


def test_memory_is_bounded_forgetting_the_stalest_address() -> None:
    clock = Clock()
    throttle = SignInThrottle(max_failures=1, window_s=60, max_clients=3, clock=clock)
    for address in ("a", "b", "c"):
        throttle.failed(address)
    throttle.failed("a")  # "a" is now the most recent; "b" the stalest
    throttle.failed("d")
    assert len(throttle) == 3
    assert throttle.wait_s("b") == 0
    assert all(throttle.wait_s(address) > 0 for address in ("a", "c", "d"))


def test_failures_beyond_the_limit_keep_constant_memory() -> None:
    clock = Clock()
    throttle = SignInThrottle(max_failures=5, window_s=60, clock=clock)
    for _ in range(10_000):
        throttle.failed("a")
    assert len(throttle._failures["a"]) == 5
