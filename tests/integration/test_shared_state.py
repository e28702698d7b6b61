"""The replicas' shared state under the least-privilege user ``jobbridge acl --role state``
prints: everything it needs works, and nothing else may be written."""

from __future__ import annotations

import shlex
import time
from urllib.parse import urlsplit

import pytest
import redis

from jobbridge.acl import state_acl_setuser
from jobbridge.sources import connect
from jobbridge.web.shared_state import SharedState

pytestmark = pytest.mark.redis


async def test_the_state_user_can_do_what_the_shared_state_needs_and_nothing_else(
    redis_url: str,
) -> None:
    admin = redis.Redis.from_url(redis_url)
    line = state_acl_setuser("jb-state", "jobbridge:").replace(">CHANGE-ME", ">pw-0123456789")
    admin.execute_command(*shlex.split(line))
    parts = urlsplit(redis_url)
    url = f"redis://jb-state:pw-0123456789@{parts.hostname}:{parts.port}{parts.path}"
    shared = SharedState(connect(url), "jobbridge:", key_fingerprint="k1", window_s=60)
    try:
        await shared.check()
        assert shared.up, shared.detail
        await shared.sign_out("sid-1", int(time.time()) + 60)
        assert await shared.signed_out("sid-1") and not await shared.signed_out("sid-2")
        for _ in range(3):
            await shared.failed("10.0.0.1")
        assert await shared.wait_s("10.0.0.1", 3) >= 1
        assert await shared.wait_s("10.0.0.2", 3) == 0
        assert shared.up and shared.replicas == 1
        assert 0 < admin.ttl("jobbridge:state:signed-out:sid-1") <= 60
        assert 0 < admin.ttl("jobbridge:state:sign-in-failures:10.0.0.1") <= 61
        limited = connect(url)
        with pytest.raises(redis.exceptions.NoPermissionError):
            await limited.set("autumn:jobs:record:x", "{}")
        with pytest.raises(redis.exceptions.NoPermissionError):
            await limited.set("jobbridge:audit", "x")
        await limited.aclose()
    finally:
        await shared.close()
        admin.execute_command("ACL", "DELUSER", "jb-state")
        admin.close()


async def test_a_viewer_user_degrades_to_this_process_with_the_reason(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    admin = redis.Redis.from_url(redis_url)
    admin.execute_command("ACL", "SETUSER", "jb-viewer", "on", ">pw-0123456789", "~*", "+@read")
    parts = urlsplit(redis_url)
    url = f"redis://jb-viewer:pw-0123456789@{parts.hostname}:{parts.port}{parts.path}"
    shared = SharedState(connect(url), "jobbridge:", key_fingerprint="k1", window_s=60)
    try:
        await shared.check()
        assert not shared.up and "NOPERM" in (shared.detail or "")
        assert "only until it is back" in caplog.text
        # Requests then skip the shared Redis: nothing is signed out, nobody waits.
        await shared.sign_out("sid-1", int(time.time()) + 60)
        assert not await shared.signed_out("sid-1")
        assert await shared.wait_s("10.0.0.1", 3) == 0
    finally:
        await shared.close()
        admin.execute_command("ACL", "DELUSER", "jb-viewer")
        admin.close()
