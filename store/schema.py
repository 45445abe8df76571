"""The store's schema as named migrations. The tables are a public interface (users query them
with SQL): add columns and tables in new migrations; never rename what is here."""
from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    ("001_initial", """
        CREATE TABLE documents (
            doc_id      VARCHAR NOT NULL,   -- stable id derived from the absolute path
            path        VARCHAR NOT NULL,   -- absolute path at ingest time
            sha256      VARCHAR NOT NULL,   -- of the file's bytes: unchanged bytes are skipped
            mime        VARCHAR,
            n_chars     BIGINT,
            text        VARCHAR,            -- the normalised text every offset points into
            metadata    JSON,               -- parser facts: encoding, pages, title, elements
            ingested_at TIMESTAMP
        );
        CREATE TABLE strategies (
            strategy_id VARCHAR NOT NULL,   -- name + hash of canonical params
            name        VARCHAR NOT NULL,
            params      JSON
        );
        CREATE TABLE chunks (
            chunk_id     VARCHAR NOT NULL,
            doc_id       VARCHAR NOT NULL,
            strategy_id  VARCHAR NOT NULL,
            seq          INTEGER NOT NULL,  -- order within (doc_id, strategy_id), from 0
            char_start   BIGINT NOT NULL,   -- documents.text[char_start:char_end] == text
            char_end     BIGINT NOT NULL,
            text         VARCHAR NOT NULL,
            n_tokens     INTEGER,
            page_start   INTEGER,           -- 1-based; NULL for formats without pages
            page_end     INTEGER,
            heading_path VARCHAR[],
            metadata     JSON
        );
        -- Which strategies a document version has been chunked with; written in the same
        -- transaction as its chunks, so it is the record of what is complete.
        CREATE TABLE document_strategies (
            doc_id      VARCHAR NOT NULL,
            strategy_id VARCHAR NOT NULL,
            sha256      VARCHAR NOT NULL,
            n_chunks    INTEGER NOT NULL,
            chunked_at  TIMESTAMP
        );
        CREATE TABLE runs (
            run_id      VARCHAR NOT NULL,
            started_at  TIMESTAMP,
            finished_at TIMESTAMP,
            command     VARCHAR,
            stats       JSON
        );
        CREATE TABLE rejects (
            run_id VARCHAR,
            path   VARCHAR,
            stage  VARCHAR,   -- walk | read | parse | chunk | store
            reason VARCHAR
        );
        CREATE INDEX chunks_doc ON chunks (doc_id, strategy_id);
    """),
    ("002_embeddings", """
        -- one vector per (chunk, model); FLOAT[] so models of different sizes share the table
        CREATE TABLE embeddings (
            chunk_id VARCHAR NOT NULL,
            model_id VARCHAR NOT NULL,
            vec      FLOAT[] NOT NULL
        );
        -- vectors by the exact embedded text: unchanged text is never embedded twice, across
        -- strategies, runs and document edits (rows here outlive the chunks they came from)
        CREATE TABLE embedding_cache (
            model_id    VARCHAR NOT NULL,
            text_sha256 VARCHAR NOT NULL,
            vec         FLOAT[] NOT NULL
        );
        -- each model's dimension, fixed by its first vector
        CREATE TABLE embedding_models (
            model_id   VARCHAR NOT NULL,
            dim        INTEGER NOT NULL,
            created_at TIMESTAMP
        );
        -- BM25 indexes (DuckDB fts) per strategy, and the state of the chunks each was built from
        CREATE TABLE fts_indexes (
            name        VARCHAR NOT NULL,
            strategy_id VARCHAR,
            fingerprint VARCHAR NOT NULL
        );
        CREATE INDEX embeddings_chunk ON embeddings (chunk_id, model_id);
        CREATE INDEX embedding_cache_key ON embedding_cache (model_id, text_sha256);
    """),
    ("003_vectors_once", """
        -- The exact embedded text's hash beside each vector (NULL for vectors that depend on more
        -- than the text: late chunking). The cache look-up reads live vectors here, so a vector is
        -- written once; embedding_cache now keeps the vectors of chunks that were deleted or
        -- replaced (moved there when their chunks go), so an edit still re-embeds only new text.
        ALTER TABLE embeddings ADD COLUMN text_sha256 VARCHAR;
    """),
    ("004_embed_text_and_memories", """
        -- The text the embedding stage embeds when it is not the chunk's own (a QChunker completion,
        -- an outline question before the text); NULL: the chunk's text. The text itself never changes.
        ALTER TABLE chunks ADD COLUMN embed_text VARCHAR;
        -- MoM's document memory beside its atomic chunks: per chunk, its outline entry and its core
        -- content, written with the chunks (same transaction) and searched as their own layers.
        CREATE TABLE memories (
            memory_id   VARCHAR NOT NULL,
            doc_id      VARCHAR NOT NULL,
            strategy_id VARCHAR NOT NULL,
            chunk_id    VARCHAR NOT NULL,   -- the atomic chunk this entry belongs to
            layer       VARCHAR NOT NULL,   -- outline | core
            seq         INTEGER NOT NULL,   -- the chunk's seq
            text        VARCHAR NOT NULL    -- what the model wrote (never part of a chunk's text)
        );
        CREATE TABLE memory_embeddings (
            memory_id VARCHAR NOT NULL,
            model_id  VARCHAR NOT NULL,
            vec       FLOAT[] NOT NULL
        );
        CREATE INDEX memories_doc ON memories (doc_id, strategy_id);
    """),
    ("005_enrichment", """
        -- The enrichment a document's chunks of one strategy carry (chunkctl.enrich: an id of the
        -- enrichers, their model and the embed format); NULL: none asked, or not complete (a chunk's
        -- enricher failed, so the next run tries it again). Enricher output lives in chunks.metadata,
        -- the metadata block as a memories row of layer 'metadata' (embedded for unified and late fusion).
        ALTER TABLE document_strategies ADD COLUMN enrichment VARCHAR;
    """),
]
