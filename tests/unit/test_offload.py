"""Big values are decoded in the worker process, with the same result as in place."""

from __future__ import annotations

import io
import json
import pickle

import pytest

from jobbridge import offload
from jobbridge.adapters.autumn import records
from jobbridge.model import JobStatus


def worker_calls() -> int:
    """How many calls the decoding process has run (its own counter)."""
    return offload._worker.calls


def big_record() -> bytes:
    payload = {"items": [{"n": n, "text": "y" * 20} for n in range(20_000)]}
    body = {
        "id": "j1",
        "name": "send_email",
        "queue": "default",
        "payload": payload,
        "attempt": 1,
        "max_attempts": 5,
        "initial_backoff_ms": 250,
        "enqueued_at_ms": 1_780_000_000_000,
    }
    raw = json.dumps(body).encode()
    assert len(raw) > offload.INLINE_BYTES
    return raw


async def test_a_big_value_is_decoded_in_the_worker_as_it_would_be_here() -> None:
    raw = big_record()
    before = worker_calls()
    args = ("orders", "j1", JobStatus.ENQUEUED, "queue", None)
    there = await offload.decode(records.detail, raw, *args)
    assert worker_calls() == before + 1
    assert there == records.detail(raw, *args)
    small = raw[:100]
    assert await offload.decode(records.summarize, small) == records.summarize(small)
    assert worker_calls() == before + 1


@pytest.mark.slow
async def test_what_the_worker_cannot_run_is_decoded_here_and_the_worker_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    raw = big_record()
    offload._worker.stop()  # the next call starts a fresh worker
    # A function the worker may not run stands for any failure there: decoded here instead.
    assert await offload.decode(_not_ours, raw) == len(raw)
    assert "decoding" in caplog.text and "here instead" in caplog.text
    before = worker_calls()
    assert (await offload.decode(records.summarize, raw)).recorded_id == "j1"
    assert worker_calls() == before + 1


def _not_ours(raw: bytes) -> int:
    return len(raw)


_not_ours.__module__ = "elsewhere"


class _RunsCode:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("ran",))


def test_frames_build_no_other_classes() -> None:
    with pytest.raises(pickle.UnpicklingError, match="may not be in a frame"):
        offload._FrameUnpickler(io.BytesIO(pickle.dumps(_RunsCode()))).load()
    row = records.to_job(None, source="s", job_id="x", status=JobStatus.FAILED, raw_status="d")
    assert offload._FrameUnpickler(io.BytesIO(pickle.dumps(row))).load() == row
