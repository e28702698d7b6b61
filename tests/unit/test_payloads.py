"""Safe payload previews."""

from __future__ import annotations

import pickle
import zlib

from jobbridge.adapters.payloads import describe_bytes, json_detail, json_preview


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


def test_pickle_is_listed_never_loaded(tmp_path) -> None:
    marker = tmp_path / "pwned"
    data = pickle.dumps(Boom(str(marker)))
    text, kind = describe_bytes(data)
    assert kind.startswith("pickle")
    assert "REDUCE" in text and "system" in text
    assert not marker.exists()


def test_zlib_json_and_text_and_binary() -> None:
    text, kind = describe_bytes(zlib.compress(b'{"k": "v"}'))
    assert kind == "zlib, json" and '"k": "v"' in text
    assert describe_bytes(b"hello") == ("hello", "text")
    text, kind = describe_bytes(b"\xff\xfe\x00")
    assert kind == "binary (hex)" and text == "ff fe 00"
    assert describe_bytes(b"") == ("", "empty")


def test_zlib_bomb_is_bounded() -> None:
    bomb = zlib.compress(b"a" * 50_000_000)
    text, kind = describe_bytes(bomb, limit=1000)
    assert kind.startswith("zlib")
    assert len(text) <= 1001
