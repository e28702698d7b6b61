"""Chart series: completed and failed jobs per time step and queue depth over time, per source,
followed in the background and kept in Redis under jobbridge's prefix (docs/operations.md)."""
