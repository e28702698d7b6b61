"""The shared queue discovery: passes, the two ways of forgetting, limits and problems."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from jobbridge.adapters import discovery as discovery_module
from jobbridge.adapters.discovery import DiscoveryProblem, QueueDiscovery


class Walk:
    """A keyspace of pages: each step returns the next page; the last ends the pass."""

    def __init__(self, *pages: Iterable[str]) -> None:
        self.pages = [list(p) for p in pages]
        self.steps = 0
        self.problem: str | None = None

    async def __call__(self, cursor: int) -> tuple[int, list[str]]:
        self.steps += 1
        if self.problem:
            raise DiscoveryProblem(self.problem)
        following = cursor + 1 if cursor + 1 < len(self.pages) else 0
        return following, self.pages[cursor]


async def test_a_pass_replaces_the_names_default_first() -> None:
    walk = Walk(["b", "default"], ["a", "b"])
    found = QueueDiscovery(walk, default="default")
    assert found.names == ("default",) and found.total == 1
    await found.step()
    assert found.names == ("default",) and found.passes == 0
    await found.step()
    assert found.names == ("default", "a", "b") and found.passes == 1 and found.total == 3
    walk.pages = [["c"]]
    await found.run()
    assert found.names == ("c",) and found.passes == 2


async def test_an_empty_pass_shows_the_default_queue() -> None:
    found = QueueDiscovery(Walk([]), default="celery")
    await found.run()
    assert found.names == ("celery",) and found.passes == 1


async def test_a_pass_keeps_at_most_the_limit_and_counts_the_rest() -> None:
    found = QueueDiscovery(Walk(["q1", "q2", "q3", "q2"]), default="default", limit=2)
    await found.run()
    assert found.names == ("q1", "q2") and found.total == 3


async def test_a_problem_stops_the_run_and_restarts_the_walk() -> None:
    walk = Walk(["a"], ["b"])
    found = QueueDiscovery(walk, default="default")
    await found.step()
    walk.problem = "key rq:queues is a string, expected a set"
    await found.run()
    assert found.problem == walk.problem and found.cursor == 0 and walk.steps == 2
    walk.problem = None
    await found.run()
    assert found.problem is None and found.names == ("a", "b")


async def test_kept_names_show_at_once_and_go_only_after_keep_s(monkeypatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(discovery_module.time, "monotonic", lambda: clock[0])
    walk = Walk(["x"])
    found = QueueDiscovery(walk, default="default", limit=None, keep_s=600.0, pinned=["default"])
    assert found.names == ("default",)
    clock[0] += 1
    await found.step()
    assert found.names == ("default", "x") and "x" in found
    walk.pages = [[]]
    clock[0] += 10
    await found.step()  # not seen this pass, but seen 10 s ago
    assert found.names == ("default", "x")
    clock[0] += 601
    await found.step()
    assert found.names == ("default",) and found.passes == 3
    found.forget("default")
    assert found.names == ("default",)


async def test_refresh_rests_between_passes(monkeypatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(discovery_module.time, "monotonic", lambda: clock[0])
    walk = Walk(["a"])
    found = QueueDiscovery(walk, default="default", pass_interval_s=30.0)
    await found.refresh()
    await found.refresh()
    assert walk.steps == 1
    clock[0] += 31
    await found.refresh()
    assert walk.steps == 2


@pytest.mark.parametrize("name", ["", "a"])
async def test_forget_of_a_replaced_name_changes_nothing(name: str) -> None:
    found = QueueDiscovery(Walk(["a"]), default="default")
    await found.run()
    found.forget(name)
    assert found.names == ("a",)
