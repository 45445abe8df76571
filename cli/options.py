"""Options shared by several commands: one name, one help text, one environment variable."""
from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

Db = Annotated[str, typer.Option("--db", envvar="CHUNKCTL_DB",
                                 help="DuckDB store file (where it is read: also a Parquet dataset folder "
                                      "that ingest --engine ray wrote).")]
Wait = Annotated[float, typer.Option(
    "--wait", envvar="CHUNKCTL_WAIT", min=0, metavar="SECONDS",
    help="When another process holds the store (an ingest writing it), wait up to this long for it; a chunkctl "
         "writer lets waiting commands in between documents. 0: say who holds it and exit 1.")]
Chunkers = Annotated[
    Optional[list[str]],
    typer.Option("--chunker", "-c", envvar="CHUNKCTL_CHUNKER", metavar="SPEC",
                 help="Strategy spec 'name' or 'name:key=value,...' (repeatable; see `chunkctl chunkers`). "
                      "Default: recursive:size=96."),
]
PdfBackend = Annotated[str, typer.Option("--pdf-backend", envvar="CHUNKCTL_PDF_BACKEND",
                                         help="PDF text extraction: pdfium (fast, default) or pypdf.")]
Json = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON result on stdout.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
Model = Annotated[str, typer.Option("--embed", envvar="CHUNKCTL_EMBED", metavar="MODEL",
                                    help="Embedding model: minilm (default: int8 ONNX on the CPU, fp16 on a GPU), "
                                         "minilm-onnx, minilm-st, or a local sentence-transformers folder.")]
Device = Annotated[str, typer.Option("--device", envvar="CHUNKCTL_DEVICE",
                                     help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps.")]

# The LLM options are global (before the command: `chunkctl --llm openai ingest docs/`), so every
# command that reaches a model reads the same settings; environment and chunkctl.toml work as for
# any option (top-level keys: llm, llm_model, llm_base_url, ...).
Llm = Annotated[str, typer.Option("--llm", envvar="CHUNKCTL_LLM", metavar="BACKEND",
                                  help="LLM backend: local (an embedded model, no server) or openai "
                                       "(any OpenAI-compatible server).")]
LlmModel = Annotated[Optional[str], typer.Option(
    "--llm-model", envvar="CHUNKCTL_LLM_MODEL", metavar="MODEL",
    help="local: smollm2 (default), gemma3-270m, a .gguf file or a Hugging Face folder; openai: the "
         "server's model name (default: the first it lists).")]
LlmBaseUrl = Annotated[Optional[str], typer.Option(
    "--llm-base-url", envvar="CHUNKCTL_LLM_BASE_URL", metavar="URL",
    help="The server's API root for --llm openai, e.g. http://127.0.0.1:8000/v1. The API key is read "
         "from CHUNKCTL_LLM_API_KEY or OPENAI_API_KEY, never from a flag or a file.")]
LlmConcurrency = Annotated[int, typer.Option("--llm-concurrency", envvar="CHUNKCTL_LLM_CONCURRENCY", min=1,
                                             help="LLM requests in flight at once.")]
LlmMaxTokens = Annotated[Optional[int], typer.Option(
    "--llm-max-tokens-total", envvar="CHUNKCTL_LLM_MAX_TOKENS_TOTAL", min=1, metavar="N",
    help="Token budget (prompt + completion) for the run; LLM work stops cleanly when it is spent.")]
LlmTimeout = Annotated[float, typer.Option("--llm-timeout", envvar="CHUNKCTL_LLM_TIMEOUT", min=1,
                                           help="Seconds to wait for one reply before retrying.")]
LlmRetries = Annotated[int, typer.Option("--llm-retries", envvar="CHUNKCTL_LLM_RETRIES", min=0,
                                         help="Retries of a failed request (429, 5xx, timeouts, dropped "
                                              "connections), with exponential backoff.")]
LlmPrice = Annotated[Optional[str], typer.Option(
    "--llm-price", envvar="CHUNKCTL_LLM_PRICE", metavar="IN,OUT",
    help="USD per million prompt and completion tokens, e.g. 0.15,0.60: summaries then show the cost.")]
LlmCache = Annotated[Optional[str], typer.Option(
    "--llm-cache", envvar="CHUNKCTL_LLM_CACHE", metavar="FILE",
    help="Completion cache (SQLite). Default: beside the store, <db>.llm-cache.sqlite.")]
NoLlmCache = Annotated[bool, typer.Option("--no-llm-cache", envvar="CHUNKCTL_NO_LLM_CACHE",
                                          help="Neither read nor write the completion cache.")]

# Enrichment: what is written beside each chunk, and how it enters the embedded text.
Enrich = Annotated[
    Optional[list[str]],
    typer.Option("--enrich", envvar="CHUNKCTL_ENRICH", metavar="SPEC",
                 help="Enricher spec 'name' or 'name:key=value,...' (repeatable; see `chunkctl enrichers`)."),
]
EmbedFormat = Annotated[Optional[str], typer.Option(
    "--embed-format", envvar="CHUNKCTL_EMBED_FORMAT", metavar="FORMAT",
    help="What is embedded: plain (the text), prefix (the metadata block, then the text) or suffix (the text, "
         "then the block). Default with --enrich: prefix. A block that would push the text out of the "
         "embedder's window is trimmed, never the text.")]
EmbedFields = Annotated[Optional[str], typer.Option(
    "--embed-fields", envvar="CHUNKCTL_EMBED_FIELDS", metavar="F,F,...",
    help="The metadata fields of the block, in order (trimming drops from the end). Default: every field the "
         "enrichers write: document, section, pages, file, title, context, summary, keywords, entities, questions.")]


# Retrieval: one bundle of options, added to `search`, `eval` and `tune` by `retrieval_options`;
# their names are the fields of chunkctl.retrieval.Retrieval and the keys of chunkctl.toml.
def _opt(name: str, help: str, **kw):
    return typer.Option(f"--{name.replace('_', '-')}", envvar=f"CHUNKCTL_{name.upper()}", help=help, **kw)


RETRIEVAL_OPTIONS: dict[str, tuple[type, Any]] = {
    "mode": (str, _opt("mode", "vector (cosine), bm25, or hybrid (both, joined as --combine says).")),
    "combine": (str, _opt("combine", "How hybrid joins its sides: score (normalised scores, weighed by "
                                     "--dense-weight) or rrf (reciprocal rank fusion).")),
    "dense_weight": (float, _opt("dense_weight", "The dense side's share in score fusion (BM25 gets the rest).",
                                 min=0.0, max=1.0)),
    "neighbour_weight": (float, _opt("neighbour_weight", "Each chunk also gets this share of its better neighbouring "
                                                         "chunk's score (0: none).", min=0.0, max=1.0)),
    "depth": (int, _opt("depth", "Candidates taken from each side before combining (at least -k).", min=1)),
    "bm25_k1": (float, _opt("bm25_k1", "BM25 term-frequency saturation.", min=0.0)),
    "bm25_b": (float, _opt("bm25_b", "BM25 length normalisation.", min=0.0, max=1.0)),
    "index": (str, _opt("index", "exact (cosine over every vector) or hnsw (DuckDB vss index, built on first use "
                                 "and rebuilt when vectors change).")),
    "memory": (str, _opt("memory", "none, mixed (one index over chunks and MoM's outline and core entries; a memory "
                                   "hit brings its document's chunks) or per-layer (each layer apart, fused by RRF).")),
    "fusion": (str, _opt("fusion", "none, unified (score against normalise(alpha*text vector + (1-alpha)*metadata "
                                   "vector)) or late (alpha*cos(text) + (1-alpha)*cos(metadata)); both need enriched "
                                   "chunks, best with --embed-format plain.")),
    "alpha": (float, _opt("alpha", "The text side's weight in --fusion.", min=0.0, max=1.0)),
    "rerank": (str, _opt("rerank", "none, or llm: the best --rerank-depth candidates reordered by the LLM's "
                                   "yes/no relevance judgement (the global --llm options; cached).")),
    "rerank_depth": (int, _opt("rerank_depth", "Candidates the reranker reads per query.", min=1)),
    "expand": (int, _opt("expand", "A hit takes in up to this many neighbouring chunks on either side (touching "
                                   "results merge): small chunks to rank, the spans around them to read.", min=0)),
    "expand_ratio": (float, _opt("expand_ratio", "... each while it scores at least this share of the hit's score "
                                                 "(0: always).", min=0.0, max=1.0)),
    "cutoff": (str, _opt("cutoff", "k (return k results) or sage (at most k: stop before the first sharp drop in "
                                   "score).")),
    "cutoff_gap": (float, _opt("cutoff_gap", "sage: the relative drop in score that ends the results.", min=0.0,
                               max=1.0)),
}


def retrieval_options(fn):
    """Adds the retrieval options to a command and hands it one validated ``retrieval`` (a
    ``chunkctl.retrieval.Retrieval``) in their place; an invalid combination is a usage error."""
    import functools
    import inspect

    from chunkctl.retrieval import Retrieval

    defaults = Retrieval()
    sig = inspect.signature(fn, eval_str=True)
    own = [p for p in sig.parameters.values() if p.name != "retrieval"]
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[kind, option],
                               default=getattr(defaults, name)) for name, (kind, option) in RETRIEVAL_OPTIONS.items()]

    @functools.wraps(fn)
    def command(*args, **kwargs):
        values = {name: kwargs.pop(name) for name in RETRIEVAL_OPTIONS}
        try:
            retrieval = Retrieval(**values)
        except ValueError as e:
            from chunkctl.cli.render import USAGE, fail

            fail(str(e), USAGE)
        return fn(*args, retrieval=retrieval, **kwargs)

    command.__signature__ = sig.replace(parameters=own + extra)
    command.__annotations__ = {p.name: p.annotation for p in own + extra}
    return command
