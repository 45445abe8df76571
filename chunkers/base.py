"""What every chunker shares: the Span it proposes, the context it is handed, the registry,
the ``name:key=value`` spec syntax, strategy ids, and the one helper that turns spans into Chunks.

A chunker is a frozen dataclass of its parameters. It proposes spans over ``doc.text`` and never
builds text itself: ``build_chunks`` slices the source, so ``doc.text[char_start:char_end] == text``
holds by construction, and it rejects any span that is out of range, empty, or out of order.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, NamedTuple, Sequence

from chunkctl.tokens import TokenIndex, get_tokenizer
from chunkctl.types import Chunk, Document, RejectError


class Span(NamedTuple):
    start: int
    end: int
    n_tokens: int
    metadata: dict[str, Any] | None = None
    embedding: tuple[str, Any] | None = None  # (model_id, vector) when the chunker computed one (late)
    embed_text: str | None = None  # what to embed instead of the span's text (model-written context)


class ChunkerError(Exception):
    """A chunker produced spans that break the offsets contract (a bug, reported as a reject)."""


@dataclass
class ChunkContext:
    """Dependencies handed to chunkers at call time. Tokenizations are cached per (text, tokenizer)
    so several strategies over one document tokenize it once; embedders are loaded once per run,
    on ``device``; the LLM (cache, concurrency, budget, accounting) is opened on first use from
    ``llm_settings``, so runs without LLM chunkers never load a model."""

    device: str = "auto"
    llm_settings: Any = None  # chunkctl.llm.LLMSettings; None: the defaults (local model, no cache)
    _indexes: dict[tuple[int, str], TokenIndex] = field(default_factory=dict)
    _embedders: dict[str, Any] = field(default_factory=dict)
    _llm: Any = None

    @property
    def llm(self):
        if self._llm is None:
            from chunkctl.llm import LLMSettings, open_llm

            self._llm = open_llm(self.llm_settings or LLMSettings())
        return self._llm

    @property
    def llm_stats(self):
        """The LLM's accounting when a chunker used it, else None."""
        return self._llm.stats if self._llm is not None and self._llm.stats.used else None

    def embedder(self, name: str):
        emb = self._embedders.get(name)
        if emb is None:
            from chunkctl.embed import get_embedder

            emb = self._embedders[name] = get_embedder(name, self.device)
        return emb

    def embed_spans(self, text: str, embedder, spans: Sequence[tuple[int, int]]):
        """Unit vectors of text[s:e] for each span. When the embedder reads the tokenizer this
        context already ran (``embedder.tokenizer``), its token ids go straight in: tokenize once."""
        tok = getattr(embedder, "tokenizer", None)
        if tok is not None and hasattr(embedder, "embed_ids"):
            idx = self.tokens(text, tok)
            return embedder.embed_ids([idx.ids_in(s, e) for s, e in spans])
        return embedder.embed([text[s:e] for s, e in spans])

    def tokens(self, text: str, tokenizer: str) -> TokenIndex:
        key = (id(text), tokenizer)
        idx = self._indexes.get(key)
        if idx is None or idx.text is not text:
            idx = TokenIndex(text, get_tokenizer(tokenizer))
            self._indexes[key] = idx
        return idx

    def forget(self) -> None:
        self._indexes.clear()


@dataclass(frozen=True)
class Configured:
    """A frozen dataclass of parameters with a name, written as a spec (chunkers, enrichers)."""

    name: ClassVar[str] = ""

    def params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def spec(self) -> str:
        defaults = type(self)()
        changed = [f"{k}={v}" for k, v in self.params().items() if getattr(defaults, k) != v]
        return self.name + (":" + ",".join(changed) if changed else "")


@dataclass(frozen=True)
class Chunker(Configured):
    def split(self, doc: Document, ctx: ChunkContext) -> Iterable[Span]:
        raise NotImplementedError

    @property
    def strategy_id(self) -> str:
        """name + hash of the canonical parameters: stable, and different for any change."""
        canon = json.dumps(self.params(), sort_keys=True, separators=(",", ":"))
        return f"{self.name}-{hashlib.sha1(canon.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class TokenBounded(Chunker):
    """Parameters shared by the token-bounded chunkers: chunks of at most `size` tokens with
    `overlap` tokens of context, counted with `tokenizer` (minilm, cl100k, or a tokenizer.json).

    256 is the default embedding model's window: a chunk the model cannot read whole would be
    searched by its first half only."""

    size: int = 256
    overlap: int = 0
    tokenizer: str = "minilm"

    def __post_init__(self):
        if self.size < 1 or not 0 <= self.overlap < self.size:
            raise ValueError(f"{self.name}: need size >= 1 and 0 <= overlap < size")


REGISTRY: dict[str, type[Chunker]] = {}


def register(cls: type[Chunker]) -> type[Chunker]:
    REGISTRY[cls.name] = cls
    return cls


def _coerce(raw: str, typ: Any, key: str) -> Any:
    """Convert a spec value by the dataclass field's declared type (never by guessing)."""
    origin = typing.get_origin(typ)
    if origin is typing.Literal:
        if raw not in typing.get_args(typ):
            raise ValueError(f"{key} must be one of {', '.join(typing.get_args(typ))}, not {raw!r}")
        return raw
    if typ is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{key} must be true or false, not {raw!r}")
    if typ in (int, float):
        try:
            return typ(raw)
        except ValueError:
            raise ValueError(f"{key} must be {'an integer' if typ is int else 'a number'}, not {raw!r}") from None
    return raw


def parse_spec(spec: str) -> Chunker:
    """``name`` or ``name:key=value,key=value`` -> a chunker instance (ValueError if invalid)."""
    return from_spec(spec, REGISTRY, "chunker")


def from_spec(spec: str, registry: dict[str, type], noun: str) -> Any:
    """The spec syntax for any registry of frozen dataclasses (chunkers, enrichers)."""
    name, _, rest = spec.strip().partition(":")
    cls = registry.get(name)
    if cls is None:
        raise ValueError(f"unknown {noun} {name!r}; known: {', '.join(sorted(registry))}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, raw = item.partition("=")
        if not eq:
            raise ValueError(f"{spec!r}: expected key=value, got {item!r}")
        if key not in fields:
            raise ValueError(f"{name} has no parameter {key!r}; it has {', '.join(sorted(fields))}")
        kwargs[key] = _coerce(raw, hints[key], key)
    return cls(**kwargs)


def describe(cls: type) -> tuple[str, str, list[tuple[str, str, Any]]]:
    """(name, one-line doc, [(param, type, default)]) for ``chunkctl chunkers`` and ``enrichers``."""
    hints = typing.get_type_hints(cls)
    params = []
    for f in dataclasses.fields(cls):
        typ = hints[f.name]
        tname = "|".join(typing.get_args(typ)) if typing.get_origin(typ) is typing.Literal else typ.__name__
        params.append((f.name, tname, f.default))
    first_paragraph = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
    return cls.name, first_paragraph, params


def chunk_id(doc_id: str, strategy_id: str, start: int, end: int) -> str:
    return hashlib.blake2b(f"{doc_id}\0{strategy_id}\0{start}\0{end}".encode(), digest_size=8).hexdigest()


def build_chunks(doc: Document, chunker: Chunker, spans: Iterable[Span], base: int = 0,
                 first_seq: int = 0) -> list[Chunk]:
    """The only place a Chunk is made. ``base`` shifts spans of a block of a streamed document to
    document offsets. Spans must be non-empty, inside the text, and start in non-decreasing order."""
    text, sid = doc.text, chunker.strategy_id
    out: list[Chunk] = []
    last_start = -1
    for sp in spans:
        s, e = sp.start, sp.end
        if not (0 <= s < e <= len(text)):
            raise ChunkerError(f"{chunker.name}: span [{s}, {e}) outside text of length {len(text)}")
        if s < last_start:
            raise ChunkerError(f"{chunker.name}: span [{s}, {e}) starts before the previous one ({last_start})")
        last_start = s
        gs, ge = base + s, base + e
        out.append(Chunk(
            chunk_id=chunk_id(doc.doc_id, sid, gs, ge),
            doc_id=doc.doc_id,
            strategy_id=sid,
            seq=first_seq + len(out),
            char_start=gs,
            char_end=ge,
            text=text[s:e],
            n_tokens=sp.n_tokens,
            page_start=doc.page_at(s),
            page_end=doc.page_at(e - 1),
            heading_path=doc.heading_path_at(s),
            metadata=sp.metadata or {},
            embedding=sp.embedding,
            embed_text=sp.embed_text,
        ))
    return out


def chunk_document(doc: Document, chunker: Chunker, ctx: ChunkContext, base: int = 0,
                   first_seq: int = 0) -> list[Chunk]:
    return build_chunks(doc, chunker, chunker.split(doc, ctx), base=base, first_seq=first_seq)


def chunk_all(doc: Document, chunkers: Sequence[Chunker], ctx: ChunkContext, base: int = 0,
              first_seq: dict[str, int] | None = None) -> dict[str, list[Chunk]]:
    """Chunk one document with several strategies ({strategy_id: chunks}); any failure is a
    RejectError of stage "chunk" naming the strategy, never an exception that stops a run."""
    out = {}
    for ch in chunkers:
        try:
            out[ch.strategy_id] = chunk_document(doc, ch, ctx, base=base,
                                                 first_seq=(first_seq or {}).get(ch.strategy_id, 0))
        except (ChunkerError, RejectError) as err:
            raise RejectError("chunk", f"{ch.spec}: {err}") from None
        except Exception as err:  # a chunker bug on odd input must not stop the run
            raise RejectError("chunk", f"{ch.spec} failed: {type(err).__name__}: {err}") from None
    return out
