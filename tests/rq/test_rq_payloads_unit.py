"""RQ payloads are decoded from real bytes without ever executing pickle, in bounded memory."""

from __future__ import annotations

import base64
import datetime as dt
import io
import os
import pickle
import random
import struct
import time
import traceback
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from rq.job import Job
from rq.results import Result
from rq.serializers import JSONSerializer

from jobbridge import offload, safejson
from jobbridge.adapters.payloads import (
    MAX_INPUT_BYTES,
    DecodedCall,
    call_preview,
    decode_value,
    inflate,
)
from jobbridge.adapters.rq.decode import decode_call, decode_exc_info, decode_exc_string
from jobbridge.adapters.unpickle import (
    MAX_INFLATED_BYTES,
    MAX_ITEMS,
    UnsafePickle,
    restricted_loads,
)
from tests.rq import tasks as rq_tasks

MiB = 1024 * 1024
#: a client object for ``Job.create``; it never connects
CLIENT = redis.Redis(host="127.0.0.1", port=1)


class Counter:
    """A job target whose bound method RQ pickles with its instance."""

    def incr(self, n: int) -> int:
        return n + 1


class OpensFile:
    """Unpickling this opens (and so creates) ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


class RunsShell:
    """Unpickling this runs ``touch path`` in a shell."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.path}",))


def rq_data(func: Any, *args: Any, serializer: Any = None, **kwargs: Any) -> bytes:
    """A job's ``data`` field exactly as RQ writes it to Redis."""
    job = Job.create(func, args=args, kwargs=kwargs, connection=CLIENT, serializer=serializer)
    data: bytes = job.to_dict()["data"]
    return data


def rq_tuple(protocol: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """RQ's ``data`` with the pickle protocol chosen (its default serializer uses 5)."""
    return zlib.compress(pickle.dumps(("tasks.add", None, args, kwargs), protocol=protocol))


def zeros_stream(total: int, prefix: bytes = b"", suffix: bytes = b"") -> bytes:
    """zlib of ``prefix + total zero bytes + suffix``, without compressing every zero.

    After a full flush deflate starts afresh, so each further MiB of zeros compresses to the
    same bytes; the Adler-32 trailer is worked out (zeros leave its low half alone and add
    ``n * low`` to its high half).
    """
    chunk = bytes(MiB)
    count, rest = divmod(total, MiB)
    assert rest == 0 and count >= 2
    deflate = zlib.compressobj(9)
    first = deflate.compress(prefix + chunk) + deflate.flush(zlib.Z_FULL_FLUSH)
    again = deflate.compress(chunk) + deflate.flush(zlib.Z_FULL_FLUSH)
    assert deflate.compress(chunk) + deflate.flush(zlib.Z_FULL_FLUSH) == again
    tail = deflate.compress(suffix) + deflate.flush()
    checksum = zlib.adler32(prefix)
    low, high = checksum & 0xFFFF, checksum >> 16
    checksum = ((high + total * low) % 65521) << 16 | low
    checksum = zlib.adler32(suffix, checksum)
    return first + again * (count - 1) + tail[:-4] + struct.pack(">I", checksum)


def peak_bytes(fn: Callable[[], Any]) -> tuple[Any, int]:
    """``fn()`` and the most memory Python held while it ran (tracemalloc)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        result = fn()
        return result, tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


# ------------------------------------------------------------------------------------------
# Well-formed jobs


def test_decode_call_reads_a_json_job_rq_wrote() -> None:
    data = rq_data(rq_tasks.add, 2, serializer=JSONSerializer, b=5)
    assert zlib.decompress(data) == b'["tests.rq.tasks.add", null, [2], {"b": 5}]'
    call = decode_call(data)
    assert call == DecodedCall("tests.rq.tasks.add", [2], {"b": 5}, "json", None)
    assert call_preview(call, 80) == "tests.rq.tasks.add(2, b=5)"


def test_decode_call_reads_a_pickled_job_rq_wrote() -> None:
    args = ("x", 1.5, None, True, b"\x00raw", [1, (2, 3)], {"k": {4}}, frozenset({5}))
    data = rq_data(rq_tasks.add, *args, b=-5)
    assert zlib.decompress(data)[:2] == b"\x80\x05"  # RQ's default: pickle protocol 5
    call = decode_call(data)
    assert call == DecodedCall("tests.rq.tasks.add", list(args), {"b": -5}, "pickle", None)


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_decode_call_reads_every_pickle_protocol(protocol: int) -> None:
    args = (2, "text", -1.25, None, False, [1, [2]], (3,), {"nested": {"n": 10**30}})
    call = decode_call(rq_tuple(protocol, args, {"b": 5, "name": "é"}))
    assert call == DecodedCall("tasks.add", list(args), {"b": 5, "name": "é"}, "pickle", None)


@pytest.mark.parametrize("protocol", [0, 1, 2, 3])
def test_sets_of_old_protocols_are_refused_as_globals(protocol: int) -> None:
    # Before protocol 4 a set is pickled as a call to builtins.set: refused like any global.
    call = decode_call(rq_tuple(protocol, ({1},), {}))
    assert call.func_name == "tasks.add" and call.args is None
    assert call.problem is not None and "set, which is never loaded" in call.problem


def test_data_that_is_not_compressed_is_read_as_it_is() -> None:
    # RQ falls back to the raw bytes when zlib refuses them.
    raw = pickle.dumps(("tasks.add", None, (1,), {}), protocol=5)
    assert decode_call(raw) == DecodedCall("tasks.add", [1], {}, "pickle", None)
    assert decode_call(b'["f", null, [], {}]') == DecodedCall("f", [], {}, "json", None)


def test_json_that_safejson_refuses_keeps_the_function_name() -> None:
    # Python's json writes NaN (RQ's JSONSerializer allows it); safejson refuses it.
    data = zlib.compress(b'["tasks.add", null, [NaN], {}]')
    call = decode_call(data)
    assert (call.func_name, call.args, call.serializer) == ("tasks.add", None, "json")
    assert call.problem is not None and "NaN" in call.problem


def test_decode_value_reads_meta_and_return_values_rq_wrote() -> None:
    job = Job.create(rq_tasks.add, args=(1,), connection=CLIENT)
    job.meta = {"progress": 0.5, "tags": ["a"]}
    assert decode_value(job.to_dict()["meta"]) == (job.meta, "pickle", None)
    job = Job.create(rq_tasks.add, args=(1,), connection=CLIENT, serializer=JSONSerializer)
    job.meta = {"progress": 0.5}
    assert decode_value(job.to_dict()["meta"]) == ({"progress": 0.5}, "json", None)
    for serializer in (None, JSONSerializer):
        result = Result(
            "j1", Result.Type.SUCCESSFUL, CLIENT, return_value=[1, "two"], serializer=serializer
        )
        raw = base64.b64decode(result.serialize()["return_value"])
        value, kind, problem = decode_value(raw)
        assert problem is None and list(value) == [1, "two"]
        assert kind == ("json" if serializer else "pickle")


def test_decode_value_refuses_a_datetime_in_meta() -> None:
    value, kind, problem = decode_value(pickle.dumps({"at": dt.datetime.now(dt.UTC)}))
    assert (value, kind) == (None, "pickle")
    assert problem is not None and "datetime.datetime" in problem


# ------------------------------------------------------------------------------------------
# Refused globals, and pickles that would run code


def test_a_datetime_argument_is_refused_and_the_function_name_kept() -> None:
    call = decode_call(rq_data(rq_tasks.add, dt.datetime(2026, 1, 2, tzinfo=dt.UTC), b=1))
    assert call.func_name == "tests.rq.tasks.add"
    assert call.args is None and call.kwargs is None and call.serializer == "pickle"
    assert call.problem is not None and "datetime.datetime, which is never loaded" in call.problem
    assert call_preview(call, 80) == "tests.rq.tasks.add(?)"


def test_a_bound_method_instance_is_refused_and_the_method_name_kept() -> None:
    call = decode_call(rq_data(Counter().incr, 1))
    assert call.func_name == "incr"  # RQ stores a method's bare name beside its instance
    assert call.args is None and call.serializer == "pickle"
    assert call.problem is not None and "Counter, which is never loaded" in call.problem


def test_the_payloads_used_below_do_run_code_under_pickle_loads(tmp_path: Path) -> None:
    marker = tmp_path / "opened"
    opened = pickle.loads(pickle.dumps(OpensFile(marker)))  # ours: it only creates a file
    opened.close()
    assert marker.exists()


@pytest.mark.parametrize("evil", [OpensFile, RunsShell])
@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_malicious_pickles_never_run(
    tmp_path: Path, evil: Callable[[Path], object], protocol: int
) -> None:
    marker = tmp_path / "pwned"
    payload = evil(marker)
    data = zlib.compress(pickle.dumps(("tasks.add", None, (payload,), {}), protocol=protocol))
    call = decode_call(data)
    assert call.func_name == "tasks.add" and call.args is None
    assert call.problem is not None and "never loaded" in call.problem
    value, kind, problem = decode_value(pickle.dumps({"meta": payload}, protocol=protocol))
    assert value is None and kind == "pickle" and problem is not None
    with pytest.raises(UnsafePickle, match="never loaded"):
        restricted_loads(pickle.dumps(payload, protocol=protocol))
    call = decode_call(rq_data(rq_tasks.add, payload))  # as RQ itself would store it
    assert call.func_name == "tests.rq.tasks.add" and call.problem is not None
    assert not marker.exists()


@pytest.mark.parametrize(
    ("raw", "refusal"),
    [
        (b"cos\nsystem\n(S'touch x'\ntR.", "os.system"),  # GLOBAL + REDUCE, protocol 0
        (b"(S'touch x'\nios\nsystem\n.", "os.system"),  # INST
        (b"\x80\x04\x8c\x02os\x8c\x06system\x93.", "os.system"),  # STACK_GLOBAL
        (b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93.", "os.system"),  # via memo
        (b"\x80\x02\x82\x01.", "extension code"),  # EXT1
        (b"\x80\x02Pfile\n.", "persistent id"),  # PERSID
        (b"\x80\x02N\x85Q.", "persistent id"),  # BINPERSID
        (b"\x80\x05N)R.", "calls an object"),  # REDUCE with no global at all
        (b"\x80\x05\x97.", "out-of-band buffer"),  # NEXT_BUFFER
    ],
)
def test_restricted_loads_refuses_every_way_to_reach_code(raw: bytes, refusal: str) -> None:
    with pytest.raises(UnsafePickle, match=refusal):
        restricted_loads(raw)
    assert decode_value(raw)[0] is None


def test_restricted_loads_returns_plain_values() -> None:
    value = {"a": [1, 2.5, None, True], "b": (b"x", bytearray(b"y")), "c": {1}, 7: "seven"}
    assert restricted_loads(pickle.dumps(value, protocol=5)) == value
    shared: list[Any] = ["x" * 1000]
    for _ in range(10):  # shared lists are pickled once and come back shared
        shared = [shared, shared]
    loaded = restricted_loads(pickle.dumps(shared, protocol=5))
    assert loaded[0] is loaded[1] and loaded[0][0] is loaded[0][1]


def test_a_value_that_expands_past_the_cap_is_refused_quickly() -> None:
    shared: list[Any] = [1]
    for _ in range(64):  # 2**64 items to anything that walks it, in 400 bytes of pickle
        shared = [shared, shared]
    started = time.perf_counter()
    with pytest.raises(ValueError, match="expands to more than"):
        restricted_loads(pickle.dumps(shared, protocol=5))
    assert time.perf_counter() - started < 0.5
    text = "y" * MiB  # a big string referred to many times expands too
    with pytest.raises(ValueError, match="expands to more than"):
        restricted_loads(pickle.dumps([text] * 100))


# ------------------------------------------------------------------------------------------
# Memory stays bounded


@pytest.fixture(scope="module")
def gib_of_zeros() -> bytes:
    bomb = zeros_stream(1024 * MiB)
    assert len(bomb) < 2 * MiB
    return bomb


def test_zeros_stream_is_a_valid_zlib_stream() -> None:
    data = zeros_stream(3 * MiB, prefix=b"head", suffix=b"tail")
    assert zlib.decompress(data) == b"head" + bytes(3 * MiB) + b"tail"


def test_inflate_refuses_a_zlib_bomb_in_bounded_memory(gib_of_zeros: bytes) -> None:
    (data, problem), peak = peak_bytes(lambda: inflate(gib_of_zeros))
    assert data == bytes(MAX_INFLATED_BYTES)  # the capped prefix is kept
    assert problem is not None and f"{MAX_INFLATED_BYTES:,}-byte cap" in problem
    assert peak < 3 * MAX_INFLATED_BYTES


def test_decode_call_of_a_zlib_bomb_keeps_the_function_name(gib_of_zeros: bytes) -> None:
    header = b"\x80\x05(\x8c\x09tasks.add\x94N\x8e" + struct.pack("<Q", 256 * MiB)
    bomb = zeros_stream(256 * MiB, prefix=header, suffix=b"\x85\x94}\x94t\x94.")
    assert len(bomb) <= MAX_INPUT_BYTES
    call, peak = peak_bytes(lambda: decode_call(bomb))
    assert call.func_name == "tasks.add" and call.args is None and call.serializer == "pickle"
    assert call.problem is not None and "inflates past" in call.problem
    assert peak < 3 * MAX_INFLATED_BYTES
    call, peak = peak_bytes(lambda: decode_call(gib_of_zeros))
    assert call.func_name is None and call.problem is not None
    assert peak < 3 * MAX_INFLATED_BYTES


def test_inflate_edges() -> None:
    exact = zlib.compress(b"a" * 1000)
    assert inflate(exact, limit=1000) == (b"a" * 1000, None)
    data, problem = inflate(exact, limit=999)
    assert data == b"a" * 999 and problem is not None and "999-byte cap" in problem
    assert inflate(b"not zlib") == (b"not zlib", None)
    assert inflate(b"") == (b"", None)
    assert inflate(exact + b"trailing") == (b"a" * 1000, None)  # as zlib.decompress
    cut = zlib.compress(os.urandom(5000))[:-100]
    data, problem = inflate(cut)
    assert data == cut and problem is not None and "cut short" in problem
    big = os.urandom(3 * 64 * 1024 + 17)  # spans several input and output chunks
    assert inflate(zlib.compress(big, 1)) == (big, None)


@pytest.mark.parametrize(
    "raw",
    [
        # memo slot 2**27: CPython would size its memo to 2 GiB (and zero it) for 10 bytes
        b"\x80\x05N" + b"r" + struct.pack("<I", 2**27) + b".",
        # a 2 GiB BINBYTES8 / BYTEARRAY8 that CPython would allocate before reading
        b"\x80\x05\x8e" + struct.pack("<Q", 2**31) + b"abc.",
        b"\x80\x05\x96" + struct.pack("<Q", 2**31) + b"abc.",
        # 200,000 one-byte opcodes, each a 216-byte empty set (0.4 to 1 s)
        pytest.param(b"\x80\x05(" + b"\x8f" * 200_000 + b"l.", marks=pytest.mark.slow),
    ],
    ids=["memo-slot", "binbytes8", "bytearray8", "empty-sets"],
)
def test_pickles_built_to_allocate_are_refused_cheaply(raw: bytes) -> None:
    with pytest.raises(ValueError):
        restricted_loads(raw)
    (value, kind, problem), peak = peak_bytes(lambda: decode_value(raw))
    assert value is None and kind == "pickle" and problem is not None
    call, peak_call = peak_bytes(lambda: decode_call(zlib.compress(raw)))
    assert call.args is None and call.problem is not None
    assert max(peak, peak_call) < 8 * MiB


def test_values_no_later_walk_could_handle_are_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(UnsafePickle, match="holds itself"):
        restricted_loads(pickle.dumps(loop))
    deep: list[Any] = []
    for _ in range(safejson.MAX_DEPTH - 1):
        deep = [deep]
    assert restricted_loads(pickle.dumps(deep)) == deep  # MAX_DEPTH levels, as safejson reads
    with pytest.raises(ValueError, match="deeper than"):
        restricted_loads(pickle.dumps([deep]))
    # Shared lists are checked by another walk, to the same limits.
    shallow = deep[0][0]  # 125 levels: fine at levels 2 and 3, too deep at level 4
    assert restricted_loads(pickle.dumps([shallow, [shallow]])) == [shallow, [shallow]]
    with pytest.raises(ValueError, match="deeper than"):
        restricted_loads(pickle.dumps([shallow, [[shallow]]]))
    with pytest.raises(ValueError, match="integer of"):
        restricted_loads(pickle.dumps([10**5000]))
    huge = [10**5000]
    with pytest.raises(ValueError, match="integer of"):
        restricted_loads(pickle.dumps([huge, huge]))
    call = decode_call(rq_tuple(5, (loop,), {}))
    assert call.func_name == "tasks.add" and call.problem is not None


def test_json_with_too_many_values_is_refused_but_commas_in_strings_are_not() -> None:
    many = b"[" + b"0," * MAX_ITEMS + b"0]"
    assert decode_value(many)[2] is not None
    csv = b'"' + b"a," * MAX_ITEMS + b'"'
    assert decode_value(csv) == ("a," * MAX_ITEMS, "json", None)
    call = decode_call(zlib.compress(b'["tasks.add", null, [' + b"1," * MAX_ITEMS + b"1], {}]"))
    assert call.func_name == "tasks.add" and call.args is None and call.problem is not None


def test_only_the_first_megabyte_of_data_is_read() -> None:
    data = zlib.compress(pickle.dumps(("tasks.add", None, (os.urandom(2 * MiB),), {})), 0)
    call = decode_call(data)
    assert call.func_name == "tasks.add" and call.args is None
    assert call.problem is not None and f"first {MAX_INPUT_BYTES:,} of" in call.problem
    big = b'["tasks.big", null, ["' + b"x" * (6 * MiB) + b'"], {}]'
    call = decode_call(zlib.compress(big))
    assert call.func_name == "tasks.big" and call.serializer == "json"
    assert call.problem is not None and "inflates past" in call.problem
    value, _, problem = decode_value(b"[" + b"1," * MAX_INPUT_BYTES + b"1]")
    assert value is None and problem is not None and "cap" in problem


# ------------------------------------------------------------------------------------------
# Garbage never raises


def valid_payloads() -> list[bytes]:
    return [
        rq_tuple(5, (1, "x", [2.5]), {"b": None}),
        rq_tuple(0, (1, "x", [2.5]), {"b": None}),
        rq_data(rq_tasks.add, 1, serializer=JSONSerializer, b=2),
        rq_data(Counter().incr, 1),
    ]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"\x80",
        b"\x80\x06N.",  # a protocol that does not exist
        b"\xff\xfe\x00garbage",
        b"x\x9c",  # a zlib header and nothing after
        b"[\xff\xfe]",  # not UTF-8
        b'["tasks.add", null, [NaN], {}]',
        b'{"func": "tasks.add"}',  # JSON, not RQ's list
        b'["tasks.add"]',
        b"[1, null, [], {}]",  # the name is not a string
        b'["tasks.add", null, 5, []]',  # args and kwargs of the wrong types
        pickle.dumps(("tasks.add", None, (), {1: "not a name"})),
        b'["tasks.add", null, [[[' + b"[" * 200 + b"]" * 203 + b", {}]",
        pickle.dumps([1, 2, 3, 4]),  # a list, not RQ's tuple
        pickle.dumps(("tasks.add", None, (1,), {}))[:-3],  # truncated
        pickle.dumps("just a string"),
    ],
)
def test_garbage_gives_a_problem_and_never_raises(data: bytes) -> None:
    for raw in (data, zlib.compress(data)):
        call = decode_call(raw)
        assert call.problem is not None, call
        assert call.serializer in {"json", "pickle", "unknown"}
        value, kind, problem = decode_value(raw)
        assert kind in {"json", "pickle", "unknown"}
        assert problem is None or value is None
        assert len(call_preview(call, 40)) <= 41


def test_every_truncation_of_a_valid_payload_is_handled() -> None:
    for data in valid_payloads():
        for raw in (data, zlib.decompress(data)):
            for end in range(len(raw)):
                call = decode_call(raw[:end])
                assert call.problem is not None
                decode_value(raw[:end])


def test_random_and_mutated_bytes_never_raise() -> None:
    rng = random.Random(20260503)
    samples = [rng.randbytes(rng.randrange(0, 300)) for _ in range(2000)]
    samples += [b"\x80\x05" + rng.randbytes(rng.randrange(0, 100)) for _ in range(2000)]
    for data in valid_payloads():
        for _ in range(300):
            mutated = bytearray(zlib.decompress(data))
            for _ in range(rng.randrange(1, 4)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            samples += [bytes(mutated), zlib.compress(bytes(mutated))]
    for raw in samples:
        call = decode_call(raw)
        assert call.serializer in {"json", "pickle", "unknown"}
        assert (call.problem is None) == (call.args is not None and call.kwargs is not None)
        assert decode_value(raw)[1] in {"json", "pickle", "unknown"}
        assert len(call_preview(call, 50)) <= 51


# ------------------------------------------------------------------------------------------
# Exception text


def a_traceback() -> str:
    try:
        rq_tasks.fail("kaboom <b>ü</b>")
    except ValueError:
        return traceback.format_exc()
    raise AssertionError("fail() returned")


def test_decode_exc_string_reads_what_rq_writes() -> None:
    text = a_traceback()
    field = Result("j1", Result.Type.FAILED, CLIENT, exc_string=text).serialize()["exc_string"]
    assert decode_exc_string(field) == (text, None)
    assert decode_exc_string(field.encode()) == (text, None)  # as Redis returns it
    assert decode_exc_string(b"") == (None, None)


@pytest.mark.parametrize("field", ["!!not base64!!", "abc", "ümlaut", b"\xff\xfe"])
def test_decode_exc_string_of_garbage_gives_a_problem(field: str | bytes) -> None:
    assert decode_exc_string(field) == (None, "exc_string is not base64")


def test_decode_exc_string_edges() -> None:
    plain = base64.b64encode(b"plain text")
    assert decode_exc_string(plain) == ("plain text", "it is not zlib-compressed; shown as stored")
    text, problem = decode_exc_string(base64.b64encode(zlib.compress(b"caf\xe9 ok")))
    assert text == "caf\ufffd ok" and problem is None  # bad UTF-8 is replaced
    bomb = base64.b64encode(zeros_stream(64 * MiB, prefix=b"Traceback"))
    (text, problem), peak = peak_bytes(lambda: decode_exc_string(bomb))
    assert text is not None and text.startswith("Traceback")
    assert len(text) == MAX_INFLATED_BYTES
    assert problem is not None and "inflates past" in problem
    assert peak < 4 * MAX_INFLATED_BYTES  # the text is returned: bytes plus str
    cut = base64.b64encode(zlib.compress(a_traceback().encode())[:-20])
    text, problem = decode_exc_string(cut)
    assert text is not None and text.startswith("Traceback") and "cut short" in str(problem)


def test_decode_exc_info_reads_the_legacy_hash_field() -> None:
    text = a_traceback()
    # rq/job.py to_dict: zlib.compress(str(exc_info).encode("utf-8")), no base64
    assert decode_exc_info(zlib.compress(text.encode("utf-8"))) == (text, None)
    assert decode_exc_info(zlib.compress(b"")) == (None, None)  # what RQ's requeue writes
    assert decode_exc_info(b"stored as text") == ("stored as text", None)  # RQ's fallback
    assert decode_exc_info(b"") == (None, None)
    shown, problem = decode_exc_info(zeros_stream(8 * MiB))
    assert shown is not None and len(shown) == MAX_INFLATED_BYTES and problem is not None
    shown, problem = decode_exc_info(zlib.compress(text.encode())[:-30])
    assert shown is not None and text.startswith(shown) and "cut short" in str(problem)


# ------------------------------------------------------------------------------------------
# Previews


class CountingList(list[Any]):
    """A list that counts the items handed out by iteration."""

    handed_out = 0

    def __iter__(self) -> Iterator[Any]:
        for item in super().__iter__():
            CountingList.handed_out += 1
            yield item


def test_call_preview_shows_plain_values_as_python_does() -> None:
    call = DecodedCall(
        "tasks.add",
        [2, "s", b"b", 1.5, None, True, (1,), (), [1, [2]], {"k": {3}}, frozenset()],
        {"b": 5, "not an identifier": 1},
        "pickle",
    )
    expected = (
        "tasks.add(2, 's', b'b', 1.5, None, True, (1,), (), [1, [2]], {'k': {3}}, "
        "frozenset(), b=5, 'not an identifier'=1)"
    )
    assert call_preview(call, 500) == expected
    assert call_preview(DecodedCall(None, None, None, "unknown"), 50) == "?(?)"
    assert call_preview(DecodedCall("f", [1], None, "pickle"), 50) == "f(1, ?)"
    assert call_preview(DecodedCall("f", [], {}, "json"), 50) == "f()"
    huge = DecodedCall("f", [10**5000], {}, "pickle")
    assert call_preview(huge, 50) == "f(<int of 16,610 bits>)"


def test_call_preview_escapes_nothing_itself() -> None:
    call = DecodedCall("tasks.<b>", ["<script>&"], {}, "json")
    assert call_preview(call, 100) == "tasks.<b>('<script>&')"


@pytest.mark.parametrize("limit", [0, 1, 5, 9, 10, 11, 40])
def test_call_preview_never_exceeds_its_limit(limit: int) -> None:
    call = DecodedCall("tasks.add", [1, "x" * 1000, list(range(100))], {"b": 5}, "json")
    whole = call_preview(call, 10_000)
    assert not whole.endswith("…") and whole.endswith("99], b=5)")
    assert call_preview(call, limit) == whole[:limit] + "…"


def test_call_preview_of_huge_arguments_costs_what_it_shows() -> None:
    args = CountingList(range(1_000_000))
    CountingList.handed_out = 0
    assert call_preview(DecodedCall("f", args, {}, "json"), 30).endswith("…")
    assert CountingList.handed_out < 20
    started = time.perf_counter()
    preview = call_preview(DecodedCall("f", ["x" * 50_000_000, [[1] * 10**6]], {}, "json"), 60)
    assert len(preview) == 61 and time.perf_counter() - started < 0.5


# ------------------------------------------------------------------------------------------
# The decoding process


def worker_calls() -> int:
    """How many calls the decoding process has run (its own counter)."""
    return offload._worker.calls


async def test_a_big_job_is_decoded_in_the_worker_as_it_would_be_here() -> None:
    data = zlib.compress(pickle.dumps(("tasks.add", None, (os.urandom(300_000),), {"b": 5})))
    assert len(data) > offload.INLINE_BYTES
    before = worker_calls()
    there = await offload.decode(decode_call, data)
    assert worker_calls() == before + 1
    assert there == decode_call(data) and there.func_name == "tasks.add"
    assert there.problem is None and there.kwargs == {"b": 5}


def test_decoded_calls_survive_the_frame_unpickler() -> None:
    call = decode_call(rq_tuple(5, ({1}, frozenset({2}), bytearray(b"x")), {"k": (1,)}))
    assert call.problem is None
    frame = io.BytesIO(pickle.dumps(call, protocol=pickle.HIGHEST_PROTOCOL))
    assert offload._FrameUnpickler(frame).load() == call
