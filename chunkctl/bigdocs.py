"""Documents too big to hold whole: a text file over the stream threshold is decoded, chunked and
stored block by block (``ingest_streamed``); a parsed document over BIG_DOCUMENT characters is
chunked block by block (``chunk_in_blocks``). Offsets are always the document's."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

from chunkctl.chunkers import Chunker, ChunkContext, chunk_all
from chunkctl.store import Store
from chunkctl.store.memory import put_memories
from chunkctl.store.vectors import put_chunk_vectors
from chunkctl.types import Document, RejectError

STREAM_THRESHOLD = 64 << 20  # text files above this are read, chunked and stored block by block
STREAM_BLOCK = 1 << 20  # characters chunked at a time: a block's token encodings stay small
BIG_DOCUMENT = 8 << 20  # characters: a parsed document longer than this is chunked block by block
TEMP_PREFIX = ".chunkctl-"  # + the store's file name + "-": a streamed document's text being written


def remove_stale_temp_files(store: Store) -> int:
    """Delete streamed-text temp files a killed run left beside the store. Safe: this process
    holds the store's write lock, so no other run of this store is writing one."""
    if store.path == ":memory:":
        return 0
    folder = os.path.dirname(os.path.abspath(store.path))
    prefix = f"{TEMP_PREFIX}{os.path.basename(store.path)}-"
    removed = 0
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix) and n.endswith(".txt")]
    except OSError:
        return 0
    for name in names:
        try:
            os.unlink(os.path.join(folder, name))
            removed += 1
        except OSError:
            pass
    return removed


def chunk_in_blocks(doc: Document, chunkers: Sequence[Chunker], ctx: ChunkContext,
                    block_chars: int = BIG_DOCUMENT) -> dict[str, list]:
    """``chunk_all``, but a document longer than ``block_chars`` is chunked block by block (cut at
    blank lines, elements and pages clipped to each block), as a streamed text is: a tokenization
    of 50 M characters at once takes gigabytes; one block's stays small. A block edge is one more
    chunk boundary; offsets are the document's, as always."""
    if len(doc.text) <= block_chars:
        return chunk_all(doc, chunkers, ctx)
    from chunkctl.parse.text import block_end
    from chunkctl.types import Element, Page

    out: dict[str, list] = {ch.strategy_id: [] for ch in chunkers}
    seq = dict.fromkeys(out, 0)
    text, a = doc.text, 0
    while a < len(text):
        b = block_end(text, a, STREAM_BLOCK)
        els = [Element(e.kind, max(e.start, a) - a, min(e.end, b) - a, e.heading_path, e.level,
                       None if e.header_end is None or not a <= e.header_end <= b else e.header_end - a)
               for e in doc.elements if e.end > a and e.start < b]
        pages = [Page(p.number, max(p.start, a) - a, min(p.end, b) - a, p.label) for p in doc.pages
                 if p.end > a and p.start < b]
        part = Document(doc.doc_id, doc.path, doc.sha256, doc.mime, text[a:b], els, pages,
                        {**doc.metadata, "block_start": a})
        for sid, cs in chunk_all(part, chunkers, ctx, base=a, first_seq=seq).items():
            out[sid].extend(cs)
            seq[sid] += len(cs)
        ctx.forget()
        a = b
    return out


def ingest_streamed(store: Store, run, path: Path, doc_id: str, sha: str,
                     chunkers: Sequence[Chunker], ctx: ChunkContext, keep_others: bool, enrichment=None,
                     enrich_id: str | None = None) -> None:
    """A very large text file, in bounded memory.

    Pass 1 decodes and normalises it block by block into a temporary UTF-8 file. Then three steps,
    each committed: (1) the new text replaces the document row (DuckDB reads the file itself) and
    the old chunks go; (2) pass 2 chunks the file block by block and commits each block's chunks;
    (3) the completion records are written. DuckDB holds an open transaction's rows in memory, so
    one transaction per document would grow with the file. Every committed chunk points into the
    stored text, so offsets never lie; after a kill between (1) and (3) the document simply has no
    completion record, and the next run redoes its chunks."""
    from chunkctl.parse.text import paragraphs, stream_text_blocks

    run.ensure_started()
    encoding, n_chars = "utf-8", 0
    tmp_dir = None if store.path == ":memory:" else os.path.dirname(os.path.abspath(store.path)) or None
    prefix = f"{TEMP_PREFIX}{os.path.basename(store.path)}-" if tmp_dir else TEMP_PREFIX
    fd, tmp_name = tempfile.mkstemp(suffix=".txt", prefix=prefix, dir=tmp_dir)
    sids = [ch.strategy_id for ch in chunkers]
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            for encoding, block in stream_text_blocks(path):
                out.write(block)
                n_chars += len(block)
        with store.transaction():
            store.drop_document_chunks(doc_id, sids if keep_others else None)
            store.put_document(doc_id, str(path), sha, "text/plain", None,
                               {"parser": "text", "encoding": encoding, "streamed": True},
                               text_file=tmp_name, n_chars=n_chars)
        seq = dict.fromkeys(sids, 0)
        complete = dict.fromkeys(sids, True)
        base = 0
        try:
            for _, block in stream_text_blocks(Path(tmp_name), block_chars=STREAM_BLOCK):
                # block_start: where the block's chunks' offsets (the document's) begin in the block's text
                doc = Document(doc_id, str(path), sha, "text/plain", block, paragraphs(block), [],
                               {"block_start": base})
                chunks = chunk_all(doc, chunkers, ctx, base=base, first_seq=seq)
                if enrichment is not None:
                    for sid in chunks:
                        chunks[sid], ok = run.enrich(doc, chunks[sid], enrichment, ctx)
                        complete[sid] = complete[sid] and ok
                ctx.forget()
                with store.transaction():
                    for sid, cs in chunks.items():
                        store.put_chunks(cs)
                        put_memories(store, cs)
                        put_chunk_vectors(store, cs)
                        seq[sid] += len(cs)
                        run.result.chunks[sid] += len(cs)
                base += len(block)
            if base != n_chars:
                raise RejectError("chunk", f"streamed text changed between passes ({base} != {n_chars} chars)")
        except BaseException:
            with store.transaction():  # leave no partial chunk set behind
                store.drop_document_chunks(doc_id, sids)
            raise
        with store.transaction():
            for sid in sids:
                store.mark_done(doc_id, sid, sha, seq[sid], enrich_id if complete[sid] else None)
    finally:
        os.unlink(tmp_name)
