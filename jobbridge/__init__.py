"""jobbridge: an operator's window onto Autumn, RQ and Celery job queues in Redis."""

from __future__ import annotations

__version__ = "0.1.0"
