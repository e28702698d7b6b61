"""Decoding hostile JSON: every failure is one JSONError, and depth is measured exactly."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from jobbridge import safejson


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (nested(10_000), "nested deeper than 127 levels"),
        (nested(128), "nested deeper than 127 levels"),
        ('{"a":' + nested(127) + "}", "nested deeper than 127 levels"),
        (b"\xff", "not valid UTF-8"),
        ('"\\ud800"', "holds an escaped lone surrogate"),
        ('{"k\\udfff":1}', "holds an escaped lone surrogate"),
        ("NaN", "non-standard JSON constant NaN"),
        ("[-Infinity]", "non-standard JSON constant -Infinity"),
        ('{"a":1}x', "extra data"),
        ("{oops", "expecting property name"),
    ],
)
def test_every_failure_is_one_error(text: str | bytes, reason: str) -> None:
    for top_keys in (False, True):
        with pytest.raises(safejson.JSONError) as caught:
            safejson.loads_checked(text, top_keys=top_keys)
        assert str(caught.value).lower().startswith(reason.lower())


def test_the_deepest_document_serde_reads_is_read() -> None:
    assert depth(safejson.loads(nested(127))) == 127
    assert safejson.loads('"\\ud83d\\ude00"') == "\U0001f600"


def test_numbers_out_of_range_are_kept_and_named() -> None:
    loaded = safejson.loads_checked('{"a":[1e999,-1e999,2.5]}')
    assert loaded.value == {"a": [float("inf"), float("-inf"), 2.5]}
    assert loaded.problems == ("number 1e999 is out of range", "number -1e999 is out of range")


def test_repeated_top_level_keys_are_listed() -> None:
    text = ' { "a" : 1, "b":{"a":1,"a":2}, "a": 3 } '
    # Small documents go through a hook, big ones through the top-level scanner: both count.
    for document in (text, text.replace('"b":', f'"pad":"{"x" * 70_000}","b":')):
        loaded = safejson.loads_checked(document, top_keys=True)
        assert loaded.value["a"] == 3 and loaded.value["b"] == {"a": 2}
        assert loaded.repeated == ("a",)
    assert safejson.loads_checked('{"b":{"a":1,"a":2}}', top_keys=True).repeated == ()
    assert safejson.loads_checked('[{"a":1,"a":2}]', top_keys=True).repeated == ()


def random_json(rng: random.Random, level: int) -> Any:
    if level > 0 and rng.random() < 0.7:
        if rng.random() < 0.5:
            return [random_json(rng, level - 1) for _ in range(rng.randrange(3))]
        return {
            rng.choice(["[", "]", "{", '"', "\\", "a"]) * rng.randrange(3): random_json(
                rng, level - 1
            )
            for _ in range(rng.randrange(3))
        }
    return rng.choice(
        [1, 2.5, None, True, "", "]]]", "[[[{", '\\"]', "\\\\", '"}', "\u00e9", "\U0001f600"]
    )


def test_depth_of_the_text_matches_the_depth_of_the_value() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        value = random_json(rng, rng.randrange(1, 9))
        for text in (json.dumps(value), json.dumps(value, ensure_ascii=False, indent=1)):
            for limit in (1, 2, 3, 5):
                assert safejson.too_deep(text.encode(), limit) == (depth(value) > limit), text
