"""The reasons ``redis_errors`` gives for each kind of Redis failure, and what the endpoints that
gather across sources do with an error that is not one (no Redis needed)."""

from __future__ import annotations

import pytest
import redis.exceptions as e

from jobbridge.adapters.redis_errors import MAX_DETAIL_CHARS, redis_errors, unavailable_detail
from jobbridge.errors import SourceUnavailable
from jobbridge.service import JobService
from jobbridge.web.actuator import actuator_jobs
from jobbridge.web.metrics import Metrics


@pytest.mark.parametrize(
    ("exc", "detail"),
    [
        pytest.param(
            e.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused."),
            "Error 111 connecting to 127.0.0.1:1. Connection refused.",
            id="refused-unchanged",
        ),
        pytest.param(e.TimeoutError("Timeout reading from socket"), "Timeout reading from socket"),
        pytest.param(e.BusyLoadingError("Redis is loading"), "Redis is loading"),
        pytest.param(ConnectionResetError(), "ConnectionResetError", id="os-error-no-text"),
        pytest.param(
            e.AuthenticationError("invalid username-password pair or user is disabled."),
            "authentication failed: invalid username-password pair or user is disabled.",
        ),
        pytest.param(
            e.NoPermissionError("this user has no permissions to run the 'scan' command"),
            "permission denied: NOPERM this user has no permissions to run the 'scan' command",
        ),
        pytest.param(
            e.ReadOnlyError("You can't write against a read only replica."),
            "Redis is read-only: You can't write against a read only replica.",
        ),
        pytest.param(
            e.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
            "Redis is out of memory: OOM command not allowed when used memory > 'maxmemory'.",
        ),
        pytest.param(
            e.NoScriptError("No matching script. Please use EVAL."),
            "script not loaded: NOSCRIPT No matching script. Please use EVAL.",
        ),
        pytest.param(
            e.InvalidResponse('Protocol error, got "H" as reply type byte'),
            'not a Redis server (invalid response: Protocol error, got "H" as reply type byte)',
        ),
        pytest.param(
            e.ResponseError("MISCONF Redis is configured to save RDB snapshots, but it's failing"),
            "Redis refused a command: MISCONF Redis is configured to save RDB snapshots, "
            "but it's failing",
        ),
        pytest.param(
            e.ResponseError("ERR user_script:3: oops script: 1b49e4, on @user_script:3."),
            "Lua script failed: ERR user_script:3: oops (at @user_script:3, script 1b49e4)",
        ),
        pytest.param(
            e.NoPermissionError(
                "Command # 1 (LLEN autumn:jobs:queue) of pipeline caused error: "
                "(\"this user has no permissions to run the 'llen' command\",)"
            ),
            "permission denied: NOPERM this user has no permissions to run the 'llen' command "
            "(in LLEN autumn:jobs:queue)",
            id="pipeline-annotation",
        ),
        pytest.param(
            e.WatchError("Watched variable changed."), "WatchError: Watched variable changed."
        ),
    ],
)
def test_detail_names_the_kind_of_failure(exc: Exception, detail: str) -> None:
    assert unavailable_detail(exc) == detail


def test_detail_of_a_garbage_reply_is_capped() -> None:
    detail = unavailable_detail(e.InvalidResponse("Protocol error: " + "x\r\n" * 10_000))
    assert detail.startswith("not a Redis server (invalid response: Protocol error: x x x")
    assert len(detail) < MAX_DETAIL_CHARS + 40
    assert "more characters]" in detail


async def test_every_redis_error_becomes_unavailable_naming_the_source() -> None:
    with pytest.raises(SourceUnavailable) as info:
        async with redis_errors("billing"):
            raise e.ResponseError("MISCONF no disk")
    assert info.value.source == "billing"
    assert info.value.detail == "Redis refused a command: MISCONF no disk"
    assert isinstance(info.value.__cause__, e.ResponseError)


async def test_data_errors_are_bugs_and_propagate() -> None:
    # redis-py raises DataError before sending anything: a bad argument from jobbridge itself.
    with pytest.raises(e.DataError):
        async with redis_errors("billing"):
            raise e.DataError("Invalid input of type: 'NoneType'.")


class BuggySource:
    """An adapter whose every read hits a jobbridge bug (what still propagates)."""

    system = "autumn"
    source = "buggy"
    audit_store = "buggy"

    async def _fail(self, *args: object) -> None:
        raise e.DataError("Invalid input of type: 'NoneType'.")

    snapshot = counters = ping = refresh_queues = _fail

    async def close(self) -> None:
        pass


async def test_a_bug_in_one_source_fails_no_endpoint_that_gathers_across_sources(
    caplog,
) -> None:
    service = JobService({"buggy": BuggySource()})  # type: ignore[dict-item]
    rows = await service.every_counters()
    assert [(r.name, r.value, r.error, r.slow) for r in rows] == [
        ("buggy", None, "internal error reading this source", False)
    ]
    assert await service.ready() == {"buggy": "internal error reading this source"}
    assert [r.public_error for r in await service.readiness()] == ["internal"]
    overview = await service.overview()
    assert overview.sources[0].error == "internal error reading this source"
    document = await actuator_jobs(service)
    assert document["sources"]["buggy"] == {"system": "autumn", "up": False, "error": "internal"}
    text = (await Metrics().render(service)).decode()
    assert 'jobbridge_source_up{source="buggy",system="autumn"} 0.0' in text
    # Bugs are logged with their traceback, for whoever has to fix them.
    assert caplog.records and all(r.exc_info for r in caplog.records)


@pytest.mark.parametrize(
    "message",
    [
        # Redis 6.2
        "Error running script (call to f_c0f4e07d13acc8c1c810243d737b96cf873d836e): "
        "@user_script:12: WRONGTYPE Operation against a key holding the wrong kind of value",
        # Redis 7.x
        "WRONGTYPE Operation against a key holding the wrong kind of value script: "
        "c0f4e07d13acc8c1c810243d737b96cf873d836e, on @user_script:12.",
    ],
)
def test_a_script_error_reads_the_same_on_every_redis_version(message: str) -> None:
    assert unavailable_detail(e.ResponseError(message)) == (
        "Lua script failed: WRONGTYPE Operation against a key holding the wrong kind of value "
        "(at @user_script:12, script c0f4e07d13ac)"
    )
