"""chunkctl: documents into retrieval-ready chunks with offsets that never lie.

The library's entry points (``chunkctl.api``), imported on first use so that ``import chunkctl``
and the CLI's start-up stay fast: ``ingest``, ``document``, ``chunk``, ``search``, ``evaluate``."""
__version__ = "0.1.0"
__all__ = ["ingest", "document", "chunk", "search", "evaluate", "__version__"]


def __getattr__(name: str):
    if name in ("ingest", "document", "chunk", "search", "evaluate"):
        from chunkctl import api

        return getattr(api, name)
    raise AttributeError(f"module 'chunkctl' has no attribute {name!r}")
