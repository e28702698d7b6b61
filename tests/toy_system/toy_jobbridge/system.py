"""The toy system's entry for jobbridge's registry of systems (docs/plugins.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobbridge.adapters.detection import any_key
from jobbridge.adapters.registry import ConfigKey, Detected, SystemSpec
from jobbridge.errors import ConfigError

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobbridge.adapters.contract import JobAdapter
    from jobbridge.settings import SourceConfig

DEFAULT_KEY_PREFIX = "toy"


def build(config: SourceConfig, client: Redis, results: Redis | None) -> JobAdapter:
    from toy_jobbridge.adapter import ToyAdapter

    return ToyAdapter(
        client,
        source=config.name,
        key_prefix=config.effective_key_prefix,
        queues=config.queues,
        jobbridge_prefix=config.jobbridge_prefix,
    )


async def detect(client: Redis) -> list[Detected]:
    """A queue list or the failed list under the default prefix (one bounded SCAN)."""
    if await any_key(client, f"{DEFAULT_KEY_PREFIX}:queue:*") or await any_key(
        client, f"{DEFAULT_KEY_PREFIX}:failed"
    ):
        return [Detected("toy", DEFAULT_KEY_PREFIX, f"keys {DEFAULT_KEY_PREFIX}:queue:*")]
    return []


def parse_colour(value: object, origin: str) -> str:
    """The toy's one config key of its own: the colour its rows would be drawn in."""
    if value not in ("red", "green", "blue"):
        raise ConfigError(f"{origin}: must be red, green or blue (got {value!r})")
    return str(value)


SYSTEM = SystemSpec(
    name="toy",
    title="Toy",
    default_key_prefix=DEFAULT_KEY_PREFIX,
    build=build,
    detect=detect,
    config_keys=(ConfigKey(name="colour", parse=parse_colour),),
    columns=(
        "id",
        "name",
        "queue",
        "status",
        "raw_status",
        "enqueued_at",
        "started_at",
        "finished_at",
        "last_error",
        "worker",
        "payload_preview",
    ),
)
