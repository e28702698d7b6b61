"""The census's pieces on their own: reading names from stored bytes, the tally and its cap,
the coverage note, a broken stored result, and the read script's reply for odd keys."""

from __future__ import annotations

import json
import os
import pickle
import random
import zlib
from collections import Counter

import pytest

from jobbridge.adapters.autumn.census import PRINCIPAL_NOT_READ, read_record
from jobbridge.adapters.rq.census import KEEP, count_page, job_name
from jobbridge.census.model import NO_PRINCIPAL, UNKNOWN_NAME, CensusState, PageCount
from jobbridge.census.reads import heads, read_heads
from jobbridge.census.runner import Tally, coverage_note
from jobbridge.census.store import result_of


def rq_data(value: object, protocol: int = 5) -> bytes:
    return zlib.compress(pickle.dumps(value, protocol=protocol))


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_an_rq_name_is_read_from_every_pickle_protocol(protocol: int) -> None:
    data = rq_data(("app.tasks.add", None, (1, 2), {"b": 3}), protocol)
    assert job_name(data[:KEEP], len(data), None) == "app.tasks.add"


def test_an_rq_name_is_read_from_the_start_of_a_long_data_field() -> None:
    noise = random.Random(1).randbytes(50_000)  # does not compress: data is far over KEEP
    data = rq_data(("app.tasks.upload", None, (noise,), {}))
    assert len(data) > 40_000
    assert job_name(data[:KEEP], len(data), None) == "app.tasks.upload"


def test_an_rq_name_from_json_then_the_description_then_unknown() -> None:
    as_json = zlib.compress(json.dumps(["app.j", None, [1], {}]).encode())
    assert job_name(as_json, len(as_json), b"ignored(1)") == "app.j"
    assert job_name(b"\x00not rq", 7, b"app.from_description(1, 2)") == "app.from_description"
    assert job_name(None, 0, None) == UNKNOWN_NAME
    assert job_name(b"\x00not rq", 7, None) == UNKNOWN_NAME


class Reduce:
    def __reduce__(self):  # what a hostile job's data could hold; never executed
        return (os.system, ("echo owned",))


def test_a_bare_reduce_pickle_is_not_named_after_the_function_it_would_call() -> None:
    data = zlib.compress(pickle.dumps(Reduce(), protocol=5))
    assert job_name(data, len(data), None) == UNKNOWN_NAME


def test_an_rq_page_counts_names_and_missing_records() -> None:
    add = rq_data(("a.add", None, (), {}))
    reply = [1, add, len(add), b"a.add()", 7, 0, None, 0, None, 0, -1, None, 0, None, 0]
    assert list(heads(reply, 2))[1] == (0, ((None, 0), (None, 0)))
    page = count_page(b"", reply)
    assert page == PageCount({"a.add": 1, UNKNOWN_NAME: 1}, None, 1)


def test_an_autumn_record_gives_its_name_and_principal() -> None:
    record = json.dumps({"id": "1", "name": "send", "payload": {"user_id": 7}}).encode()
    assert read_record(record, len(record)) == ("send", "7")
    record = json.dumps({"id": "1", "name": "send", "payload": None}).encode()
    assert read_record(record, len(record)) == ("send", NO_PRINCIPAL)
    cut = json.dumps({"id": "1", "name": "big", "payload": {"x": "y" * 9000}}).encode()
    assert read_record(cut[:4096], len(cut)) == ("big", PRINCIPAL_NOT_READ)
    assert read_record(b"{not json", 9) == (UNKNOWN_NAME, PRINCIPAL_NOT_READ)


def test_the_tally_keeps_the_top_names_and_counts_the_rest(monkeypatch) -> None:
    from jobbridge.census import runner

    monkeypatch.setattr(runner, "MAX_DISTINCT", 2)
    tally = Tally(principals=True)
    tally.add(PageCount({"a": 5, "b": 3}, {"p": 8}, 0), 8)
    tally.add(PageCount({"c": 2, "a": 1}, {"q": 3}, 1), 4)
    assert tally.names == Counter({"a": 6, "b": 3})
    fields = tally.fields()
    assert json.loads(str(fields["names"])) == [["a", 6], ["b", 3]]
    assert fields["other_names"] == 2 and fields["distinct"] == 3
    assert fields["read"] == 12 and fields["missing"] == 1
    assert fields["other_principals"] == 0 and json.loads(str(fields["principals"]))[0] == ["p", 8]


def test_the_coverage_note_says_what_changed() -> None:
    assert coverage_note(10, 10, 10, False, 0) is None
    note = coverage_note(10, 4, 7, True, 2)
    assert note is not None and "10 waiting at the start, 4 at the end" in note
    assert "the 7 jobs read" in note and "2 ids read had no record" in note


def test_a_broken_stored_result_reads_as_failed_with_what_is_readable() -> None:
    result = result_of(
        "s",
        "q",
        {"state": "exploded", "total": "x", "read": "-4", "names": '[[1,2],["a",3],{}]'},
        leased=False,
    )
    assert result.state is CensusState.FAILED
    assert (result.total_at_start, result.read) == (0, 0)
    assert [(c.name, c.count) for c in result.names] == [("1", 2), ("a", 3)]
    assert result.principals is None
    running = result_of("s", "q", {"state": "running", "names": "nope"}, leased=False)
    assert running.state is CensusState.INTERRUPTED and running.names == ()


@pytest.mark.redis
async def test_the_read_script_marks_missing_and_wrong_type_keys(redis_client) -> None:
    await redis_client.hset("h", mapping={"data": b"x" * 1000, "description": "d"})
    await redis_client.set("s", b"y" * 5000)
    await redis_client.rpush("l", "z")
    reply = await read_heads(redis_client, ["h", "gone", "l"], ("data", "description"), 10)
    assert list(heads(reply, 2)) == [
        (1, ((b"x" * 10, 1000), (b"d", 1))),
        (0, ((None, 0), (None, 0))),
        (-1, ((None, 0), (None, 0))),
    ]
    reply = await read_heads(redis_client, ["s", "h"], (), 4096)
    assert list(heads(reply, 1)) == [(1, ((b"y" * 4096, 5000),)), (-1, ((None, 0),))]


@pytest.mark.redis
async def test_the_envelope_script_cuts_out_a_long_body_and_drops_what_stays_long(
    redis_client,
) -> None:
    from jobbridge.adapters.celery.census import count_page as celery_page
    from jobbridge.census.store import script

    head = {"content-type": "application/json", "headers": {"task": "t.big", "id": "1"}}
    big = json.dumps({"body": "QUJD" * 50_000, **head}).encode()
    huge_headers = json.dumps({"body": "", "headers": {"task": "t.x", "pad": "y" * 90_000}})
    await redis_client.rpush("q", b"small", big, huge_headers.encode())
    envelopes = redis_client.register_script(script("envelopes"))
    flat = await envelopes(keys=["q"], args=[0, -1, 65_536])
    assert flat[0:2] == [b"small", 5]
    assert flat[3] == len(big) and len(flat[2]) < 200 and b'"body": ""' in flat[2]
    assert flat[4:6] == [None, len(huge_headers)]
    page = celery_page(b"", [(flat[i], flat[i + 1]) for i in range(0, 6, 2)])
    assert page.names == {"t.big": 1, UNKNOWN_NAME: 2}
