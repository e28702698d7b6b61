from __future__ import annotations

from jobbridge.cli import main

main()
