"""One module per kind of data: fetch pages (I/O) and turn them into snapshot parts (pure functions)."""
