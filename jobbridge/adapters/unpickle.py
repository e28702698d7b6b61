"""Unpickling plain values only: a stored pickle is refused before it can run code.

Celery's pickle bodies and RQ's payloads are read through :func:`restricted_loads`; every
input is capped (``MAX_INFLATED_BYTES``, ``MAX_ITEMS``, ``MAX_EXPANDED``) so a pickle built
to allocate costs a bounded amount of memory (docs/rq.md, docs/celery.md).
"""

from __future__ import annotations

import io
import itertools
import pickle
import pickletools
from collections.abc import Iterator
from typing import Any

from jobbridge import safejson

#: bytes a zlib stream may inflate to before decoding gives up. Deflate reaches about
#: 1000:1, so the 1 MiB of input read could otherwise become a gigabyte (a zlib bomb);
#: 4 MiB holds any realistic call or traceback, and inflating costs about twice that at most.
MAX_INFLATED_BYTES = 4 * 1024 * 1024
#: values a payload may build before decoding gives up: pickle opcodes, or JSON commas and
#: brackets. A 1-byte opcode can build a 216-byte empty set and 3 bytes of JSON (``{},``) a
#: 64-byte dict, so this, not the byte caps, bounds what a decoded value costs (~25 MiB).
MAX_ITEMS = 100_000
#: bits of the longest integer kept: a longer one has more digits than Python will print
#: (``sys.get_int_max_str_digits``), so every later repr or JSON encoding of it would fail
MAX_INT_BITS = 14_000
#: items plus characters a decoded value may expand to when what it shares (pickle memo
#: references) counts each time it appears, as anything that walks or prints it pays
MAX_EXPANDED = 8 * MAX_INFLATED_BYTES


#: characters of a function name kept
MAX_NAME_CHARS = 200


class Refused(ValueError):
    """A payload over one of the caps, or shaped so that later walks over it would fail."""


class UnsafePickle(Refused):
    """A pickle asks for something that could run code or exhaust memory: a global (any class
    or function), a call (REDUCE, BUILD, NEWOBJ…), an extension code, a persistent id, an
    out-of-band buffer, a memo slot out of order, or a value that holds itself. Nothing of it
    was run."""


class _PlainUnpickler(pickle.Unpickler):
    """Builds plain values only: every global and persistent id is refused."""

    def find_class(self, module_name: str, global_name: str, /) -> Any:
        raise UnsafePickle(f"refers to {module_name}.{global_name}, which is never loaded")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickle("refers to a persistent id, which is never loaded")


STRING_OPS = frozenset(
    {"UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
    | {"STRING", "BINSTRING", "SHORT_BINSTRING"}
)
#: opcodes that push no value
_FRAMING_OPS = frozenset({"PROTO", "FRAME", "MARK"})
PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
#: opcodes that import, call or reach outside the stream, and what each would do
_REFUSED_OPS: dict[str, str] = {
    **dict.fromkeys(("GLOBAL", "STACK_GLOBAL", "INST"), "refers to a global"),
    **dict.fromkeys(("REDUCE", "BUILD", "OBJ", "NEWOBJ", "NEWOBJ_EX"), "calls an object"),
    **dict.fromkeys(("EXT1", "EXT2", "EXT4"), "refers to an extension code"),
    **dict.fromkeys(("PERSID", "BINPERSID"), "refers to a persistent id"),
    **dict.fromkeys(("NEXT_BUFFER", "READONLY_BUFFER"), "refers to an out-of-band buffer"),
}


def _check_opcodes(data: bytes) -> None:
    """Refuse a pickle from its opcodes alone, before anything is built.

    ``pickletools.genops`` reads opcodes and builds nothing, and it checks each declared
    length against the bytes really there. CPython's unpickler does neither: it allocates a
    ``BINBYTES8`` of the declared size before reading it, and sizes its memo to a ``PUT``
    index, so ten bytes can make it take gigabytes. This pass refuses those, every opcode that
    imports or calls, and more than ``MAX_ITEMS`` opcodes (about a microsecond each).
    """
    stores = 0  # memo slots stored so far: a pickler numbers them in order, from 0
    arg: Any  # genops gives each opcode's argument as decoded: an int for these
    for count, (opcode, arg, pos) in enumerate(pickletools.genops(data), 1):
        name = opcode.name
        if count > MAX_ITEMS:
            raise Refused(f"holds more than {MAX_ITEMS:,} opcodes")
        if name == "MEMOIZE":
            stores += 1
        elif name in PUT_OPS:
            if arg > stores:
                raise UnsafePickle(f"stores memo slot {arg:,} out of order")
            stores += 1
        elif name in _REFUSED_OPS:
            raise UnsafePickle(_refusal(data, name, arg, pos))
        elif name == "PROTO" and arg > pickle.HIGHEST_PROTOCOL:
            raise Refused(f"has an unknown protocol {arg}")


def _refusal(data: bytes, name: str, arg: Any, at: int | None) -> str:
    """What a refused opcode asks for, in words."""
    if name in ("GLOBAL", "INST") and isinstance(arg, str):
        return f"refers to {arg.replace(' ', '.')[:MAX_NAME_CHARS]}, which is never loaded"
    found = _stack_global_name(data, at) if name == "STACK_GLOBAL" else None
    if found is not None:
        return f"refers to {found[:MAX_NAME_CHARS]}, which is never loaded"
    return f"{_REFUSED_OPS[name]} ({name}), which is never done"


def _stack_global_name(data: bytes, at: int | None) -> str | None:
    """The "module.name" a STACK_GLOBAL at offset ``at`` takes from the two strings pushed
    before it (directly or from the memo), when it can tell: the opcodes are read again."""
    memo: dict[int, str | None] = {}
    last: tuple[str | None, str | None] = (None, None)
    arg: Any
    for opcode, arg, pos in pickletools.genops(data):
        name = opcode.name
        if pos == at:
            return f"{last[0]}.{last[1]}" if last[0] and last[1] else None
        if name in PUT_OPS:
            memo[len(memo) if name == "MEMOIZE" else arg] = last[1]
        elif name in _GET_OPS:
            last = (last[1], memo.get(arg))
        elif name not in _FRAMING_OPS:
            last = (last[1], arg if name in STRING_OPS and isinstance(arg, str) else None)
    return None


_CONTAINERS = (list, tuple, dict, set, frozenset)
_TEXTS = (str, bytes, bytearray)


def _children(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        return itertools.chain(value.keys(), value.values())
    return iter(value)


def _check_shape(value: Any) -> None:
    """Refuse a decoded value that later walks over it would choke on.

    A few pickle bytes (memo references) can build a list that holds itself, one nested
    deeper than ``safejson.MAX_DEPTH``, an integer too long to print, or a list holding
    another twice, 60 levels down: 2**60 items to anything that walks or prints it (an
    encoder, a template). Raises ``Refused`` (``UnsafePickle`` for a value holding itself).
    """
    if not _check_tree(value):
        _check_shared(value)


def _level_weight(items: list[Any]) -> int:
    """The expanded weight of one level of items, their containers counting 1 each."""
    bits = [item.bit_length() for item in items if isinstance(item, int)]
    if bits and max(bits) > MAX_INT_BITS:
        raise Refused(f"holds an integer of {max(bits):,} bits")
    texts = [item for item in items if isinstance(item, _TEXTS)]
    return len(items) + sum(map(len, texts)) + sum(bits) // 3


def _check_tree(value: Any) -> bool:
    """:func:`_check_shape`, level by level with work per container done at C speed; False,
    for the exact walk, as soon as a container turns up twice (shared, or holding itself)."""
    seen: set[int] = set()
    level = [value]
    weight = depth = 0
    while True:
        weight += _level_weight(level)
        if weight > MAX_EXPANDED:
            raise Refused(f"expands to more than {MAX_EXPANDED:,} items and characters")
        containers = [item for item in level if isinstance(item, _CONTAINERS)]
        if not containers:
            return True
        if depth >= safejson.MAX_DEPTH:
            raise Refused(f"nests deeper than {safejson.MAX_DEPTH} levels")
        ids = set(map(id, containers))
        if len(ids) < len(containers) or not ids.isdisjoint(seen):
            return False
        seen |= ids
        level = list(itertools.chain.from_iterable(map(_children, containers)))
        depth += 1


_END = object()


def _weight(item: Any) -> int:
    """What printing a scalar costs, roughly in characters."""
    if isinstance(item, _TEXTS):
        return 1 + len(item)
    if isinstance(item, int):
        if item.bit_length() > MAX_INT_BITS:
            raise Refused(f"holds an integer of {item.bit_length():,} bits")
        return 1 + item.bit_length() // 3
    return 1


def _add(frame: list[Any], height: int, weight: int) -> None:
    """Count a child (of ``height`` levels, 0 for a scalar) into its container's frame."""
    frame[2] = max(frame[2], height + 1)
    frame[3] += weight
    if frame[3] > MAX_EXPANDED:
        raise Refused(f"expands to more than {MAX_EXPANDED:,} items and characters")


def _check_shared(value: Any) -> None:
    """:func:`_check_shape` for a value that shares containers: each is visited once, its
    height and expanded weight remembered, so shared ones cost nothing more."""
    done: dict[int, tuple[int, int]] = {}
    # each frame: [container id, children still to see, height, expanded weight]; the first
    # stands for no container, to hold the value itself
    path: list[list[Any]] = [[0, iter((value,)), 0, 0]]
    on_path: set[int] = set()
    while path:
        frame = path[-1]
        item = next(frame[1], _END)
        if item is _END:
            path.pop()
            on_path.discard(frame[0])
            done[frame[0]] = (frame[2], frame[3])
            if path:
                _add(path[-1], frame[2], frame[3])
        elif not isinstance(item, _CONTAINERS):
            _add(frame, 0, _weight(item))
        elif id(item) in on_path:
            raise UnsafePickle("holds a container that holds itself")
        elif id(item) in done:
            height, weight = done[id(item)]
            if len(path) - 1 + height > safejson.MAX_DEPTH:
                raise Refused(f"nests deeper than {safejson.MAX_DEPTH} levels")
            _add(frame, height, weight)
        elif len(path) > safejson.MAX_DEPTH:
            raise Refused(f"nests deeper than {safejson.MAX_DEPTH} levels")
        else:
            path.append([id(item), _children(item), 1, 1])
            on_path.add(id(item))


def restricted_loads(raw: bytes) -> Any:
    """Unpickle plain values only (protocols 0-5); nothing in ``raw`` can run code.

    Stored pickles are attacker-controlled: ``pickle.loads`` would import and call whatever
    they name. Here the opcodes are checked first (see :func:`_check_opcodes`), then an
    unpickler whose ``find_class`` and ``persistent_load`` always raise builds the value,
    which is then checked for self-reference, depth, expanded size and giant integers.

    Raises:
        UnsafePickle: the pickle refers to a global (a datetime, a class, a function…), calls
            anything, refers outside itself, or is built to make CPython allocate.
        ValueError: the bytes are not a whole pickle of protocol 0-5; or they are over
            ``MAX_INFLATED_BYTES``, ``MAX_ITEMS`` or ``MAX_EXPANDED``; or the value nests
            deeper than ``safejson.MAX_DEPTH`` or holds an integer over ``MAX_INT_BITS``.
            The message reads after "the pickle".
    """
    if len(raw) > MAX_INFLATED_BYTES:
        raise Refused(f"is {len(raw):,} bytes, over the {MAX_INFLATED_BYTES:,}-byte cap")
    try:
        _check_opcodes(raw)
        value = _PlainUnpickler(io.BytesIO(raw)).load()
    except Refused:  # UnsafePickle is one too
        raise
    except Exception as exc:  # genops and the unpickler raise many types on hostile input
        raise ValueError(f"is not a whole pickle ({type(exc).__name__}: {exc})"[:300]) from None
    _check_shape(value)
    return value
