"""A screening run: the engine's wiring, y' generation, scoring, caches, spool, shards, merge."""
