"""The job systems jobbridge reads: one package per system, the shared pieces beside them.

The registry (:mod:`jobbridge.adapters.registry`) collects each system's description: the
built-in ones and those an installed distribution declares under the entry-point group
``jobbridge.systems``.
"""

from __future__ import annotations

from jobbridge.adapters.registry import (
    ENTRY_POINT_GROUP,
    ActionSpec,
    ConfigKey,
    ConfirmStep,
    Detected,
    SystemSpec,
    action_notes,
    confirm_step,
    fallback,
    names,
    system,
    systems,
    title,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "ActionSpec",
    "ConfigKey",
    "ConfirmStep",
    "Detected",
    "SystemSpec",
    "action_notes",
    "confirm_step",
    "fallback",
    "names",
    "system",
    "systems",
    "title",
]
