"""The local backend: the engine's stages on a thread pool of this process, under a memory budget,
with Python UDFs in worker processes."""
