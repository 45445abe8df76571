"""Chunking strategies behind one interface and one registry.

Importing this package registers every built-in strategy; ``parse_spec("recursive:size=256")``
returns a configured chunker, ``REGISTRY`` maps names to classes.
"""
from chunkctl.chunkers import (adaptive, cluster, fixed, idc, late, lumber, margin, mom, ppl, qchunker,  # noqa: F401
                               recursive, recursive_lc, semantic, sentence, split_merge,
                               structure)  # importing registers each strategy
from chunkctl.chunkers.base import (REGISTRY, Chunker, ChunkContext, ChunkerError, Span, build_chunks,
                                    chunk_all, chunk_document, describe, parse_spec)

DEFAULT_SPEC = "recursive:size=96"  # chosen by measurement: README "Retrieval", bench/retrieval_quality.py

__all__ = ["DEFAULT_SPEC", "REGISTRY", "Chunker", "ChunkContext", "ChunkerError", "Span", "build_chunks",
           "chunk_all", "chunk_document", "describe", "parse_spec"]
