"""Safe payload previews and decoding shared by every system."""

from __future__ import annotations

import pickle
import zlib

from jobbridge.adapters.payloads import decode_value, inflate, json_detail, json_preview


class Boom:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.path}",))


def test_json_preview_is_compact_and_capped() -> None:
    assert json_preview({"a": [1, 2]}) == '{"a":[1,2]}'
    assert json_preview(None) == ""
    long = json_preview({"x": "y" * 1000})
    assert len(long) == 161 and long.endswith("…")


def test_json_detail_kinds() -> None:
    assert json_detail(None) == ("", "empty")
    text, kind = json_detail({"a": 1})
    assert kind == "json" and '"a": 1' in text
    _, kind = json_detail("z" * 100_000, limit=100)
    assert kind == "json (truncated)"


def test_pickle_is_refused_never_loaded(tmp_path) -> None:
    marker = tmp_path / "pwned"
    value, serializer, problem = decode_value(pickle.dumps(Boom(str(marker))))
    assert value is None and serializer == "pickle"
    assert problem is not None and "never loaded" in problem
    assert not marker.exists()


def test_inflate_keeps_what_is_not_zlib() -> None:
    assert inflate(zlib.compress(b'{"k": "v"}')) == (b'{"k": "v"}', None)
    assert inflate(b"hello") == (b"hello", None)
    assert inflate(b"\xff\xfe\x00") == (b"\xff\xfe\x00", None)
    assert inflate(b"") == (b"", None)


def test_zlib_bomb_is_bounded() -> None:
    bomb = zlib.compress(b"a" * 50_000_000)
    data, problem = inflate(bomb, limit=1000)
    assert data == b"a" * 1000
    assert problem is not None and "1,000-byte cap" in problem
