"""A faithful Python emulator of Autumn's Redis job runtime (`jobs.backend = "redis"`).

Autumn's keys, record schema and atomic Lua transitions as docs/autumn.md states them (its
§7 lists the emulator's two deliberate differences). Tests use ``Autumn`` as the producer
and ``Worker`` as the worker; ``jobbridge demo`` uses both for its traffic. Command line:
``python -m jobbridge.dev.autumn_emulator worker|seed --redis URL``.
"""

from __future__ import annotations

from jobbridge.dev.autumn_emulator.producer import Autumn
from jobbridge.dev.autumn_emulator.records import (
    DEFAULT_PREFIX,
    DEFAULT_QUEUE,
    canonical_json,
    decode_record,
    encode_record,
    fnv1a64_hex,
    queue_key,
    unique_key_for,
)
from jobbridge.dev.autumn_emulator.seed import reset_prefix, seed
from jobbridge.dev.autumn_emulator.worker import BUILTIN_HANDLERS, Handler, Panic, Worker

__all__ = [
    "BUILTIN_HANDLERS",
    "DEFAULT_PREFIX",
    "DEFAULT_QUEUE",
    "Autumn",
    "Handler",
    "Panic",
    "Worker",
    "canonical_json",
    "decode_record",
    "encode_record",
    "fnv1a64_hex",
    "queue_key",
    "reset_prefix",
    "seed",
    "unique_key_for",
]
