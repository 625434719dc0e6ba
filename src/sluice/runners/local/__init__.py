"""The embedded local engine: streaming, ordered, parallel on a thread pool, under a memory budget."""
