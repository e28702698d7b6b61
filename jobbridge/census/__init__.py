"""Deep-queue census: counts by job name (and by principal where the system has one) of a
whole waiting queue, read in bounded pages by a background task and kept in Redis under
jobbridge's prefix (docs/operations.md, "Queue census")."""
