"""Every shipped Lua file, keyed as the tests name them: the shared ones by stem (``_prelude``,
``any_refuse``) and each system's as ``<system>_<stem>`` (``rq_cancel``)."""

from __future__ import annotations

from jobbridge.adapters import scripts

SYSTEM_PACKAGES = {
    "autumn": "jobbridge.adapters.autumn",
    "celery": "jobbridge.adapters.celery",
    "rq": "jobbridge.adapters.rq",
}

FILES: dict[str, str] = dict(scripts.files()) | {
    f"{system}_{stem}": text
    for system, package in SYSTEM_PACKAGES.items()
    for stem, text in scripts.files(package).items()
}


def source(system: str, stem: str) -> str:
    """The Lua that runs for one of a system's files: the prelude, then the file."""
    return scripts.source(SYSTEM_PACKAGES[system], stem)
