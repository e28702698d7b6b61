"""Example apps for the tests and the demo (importable from the repository root)."""

from __future__ import annotations
