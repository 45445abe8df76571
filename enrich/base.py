"""Enrichers behind one interface and one registry, and the stage that runs them over a
document's chunks.

An enricher is a frozen dataclass of its parameters (the chunkers' spec syntax:
``keywords:max_items=5``). Given a document and some of its chunks, it returns per chunk either
the values of its fields or the reason it could not (a reject row; the chunk keeps the rest of
its metadata). What it writes goes to ``chunks.metadata[<enricher name>]`` with the enricher's
spec (and version, once an enricher's rules changed) and, for LLM enrichers, the model id: a chunk
that already carries the same entry key is not enriched again, so a re-run over unchanged chunks
makes no call at all.

The chunk's ``text`` never changes. The stage then builds the embedded text (``template.py``).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import ClassVar, Sequence

from chunkctl.chunkers.base import Configured, from_spec
from chunkctl.enrich.template import FORMATS, build
from chunkctl.types import Chunk, Document

# Every field an enricher can write, in the order a metadata block lists them by default: the
# structural fields first (RAGMate finds them the strongest disambiguators), then the model's.
FIELD_ORDER = ("document", "section", "pages", "file", "title", "context", "summary", "keywords", "entities",
               "questions")


@dataclass(frozen=True)
class Enricher(Configured):
    fields: ClassVar[tuple[str, ...]] = ()
    uses_llm: ClassVar[bool] = False
    # Part of what a stored entry is checked against: raise it when the enricher's rules change,
    # so entries written by the old rules are redone (the spec alone would keep them).
    version: ClassVar[int] = 1

    def enrich(self, doc: Document, chunks: Sequence[Chunk], ctx) -> list[dict | str]:
        """Per chunk, ``{field: value}`` or a string saying why there is none."""
        raise NotImplementedError


REGISTRY: dict[str, type[Enricher]] = {}


def register(cls: type[Enricher]) -> type[Enricher]:
    REGISTRY[cls.name] = cls
    return cls


def parse_enricher(spec: str) -> Enricher:
    return from_spec(spec, REGISTRY, "enricher")


@dataclass(frozen=True)
class Enrichment:
    """What to enrich with and how to build the embedded text. ``fields`` None: every field the
    enrichers write, in FIELD_ORDER. ``max_tokens`` and ``tokenizer`` are the embedder's window and
    tokenizer (content tokens), against which the overflow rule counts."""

    enrichers: tuple[Enricher, ...] = ()
    format: str = "prefix"
    fields: tuple[str, ...] | None = None
    max_tokens: int = 256
    tokenizer: str = "minilm"

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ValueError(f"--embed-format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        names = [e.name for e in self.enrichers]
        if len(set(names)) != len(names):
            raise ValueError(f"an enricher is given twice: {', '.join(names)}")
        unknown = [f for f in self.fields or () if f not in FIELD_ORDER]
        if unknown:
            raise ValueError(f"unknown metadata field(s) {', '.join(unknown)}; known: {', '.join(FIELD_ORDER)}")

    @property
    def block_fields(self) -> tuple[str, ...]:
        written = {f for e in self.enrichers for f in e.fields}
        return tuple(f for f in (self.fields or FIELD_ORDER) if f in written)

    @property
    def uses_llm(self) -> bool:
        return any(e.uses_llm for e in self.enrichers)

    @property
    def label(self) -> str:
        """How eval rows name it: ``structure+keywords/prefix``, or ``plain``."""
        if not self.enrichers:
            return "plain"
        return "+".join(e.spec for e in self.enrichers) + f"/{self.format}"

    def identity(self, model_id: str | None) -> str:
        """What a stored chunk set's enrichment is recorded as: a change re-enriches it."""
        canon = json.dumps({"enrichers": [e.spec if e.version == 1 else f"{e.spec}@{e.version}" for e in self.enrichers],
                            "format": self.format,
                            "fields": list(self.block_fields), "max_tokens": self.max_tokens,
                            "tokenizer": self.tokenizer, "model": model_id if self.uses_llm else None},
                           sort_keys=True)
        return hashlib.sha1(canon.encode()).hexdigest()[:12]


@dataclass
class EnrichResult:
    chunks: list[Chunk]
    problems: list[str]  # one per chunk and enricher that failed: reject reasons
    trimmed: int = 0  # chunks whose metadata block was shortened to fit the embedder's window


def enrich_chunks(doc: Document, chunks: Sequence[Chunk], enrichment: Enrichment, ctx) -> EnrichResult:
    """Run the enrichers over one document's chunks (of one strategy) and build each chunk's
    embedded text. Pure but for the LLM calls, which go through ``ctx.llm`` (cache, budget)."""
    from chunkctl.tokens import get_tokenizer

    tok = get_tokenizer(enrichment.tokenizer)

    def count(s: str) -> int:
        return tok.length(tok.encode_batch([s])[0])

    meta = [dict(c.metadata) for c in chunks]
    problems: list[str] = []
    for e in enrichment.enrichers:
        key = {"spec": e.spec, **({"version": e.version} if e.version > 1 else {}),
               **({"model": ctx.llm.model_id} if e.uses_llm else {})}
        todo = [i for i, m in enumerate(meta) if not _done(m.get(e.name), key)]
        if not todo:
            continue
        for i, got in zip(todo, e.enrich(doc, [chunks[i] for i in todo], ctx)):
            if isinstance(got, str):
                c = chunks[i]
                problems.append(f"{e.spec}: chunk {c.seq} [{c.char_start}:{c.char_end}]: {got}")
                meta[i].pop(e.name, None)  # an older entry of another spec would misname the chunk
            else:
                meta[i][e.name] = {**got, **key}
    out, trimmed = [], 0
    for c, m in zip(chunks, meta):
        old = m.pop("embed", None)
        base = (old.get("base") if old is not None else c.embed_text) or c.text  # what the chunker embeds
        if not enrichment.enrichers and enrichment.format == "plain":
            out.append(replace(c, metadata=m, embed_text=None if base == c.text else base))
            continue
        values = {f: v for e in enrichment.enrichers for f, v in (m.get(e.name) or {}).items() if f in e.fields}
        built = build(values, enrichment.block_fields, enrichment.format, base, count, enrichment.max_tokens)
        trimmed += bool(built.dropped or built.cut)
        m["embed"] = {"format": enrichment.format, "fields": list(enrichment.block_fields), "block": built.block,
                      **(built.record if built.dropped or built.cut else {}),
                      **({"base": base} if base != c.text else {})}
        out.append(replace(c, metadata=m, embed_text=None if built.embed_text == c.text else built.embed_text))
    return EnrichResult(out, problems, trimmed)


def squash(s: str) -> str:
    return " ".join(str(s).split())


def cut_words(s: str, n: int) -> str:
    """At most ``n`` words, "…" marking a cut."""
    words = s.split()
    return s if len(words) <= n else " ".join(words[:n]) + " …"


def _done(entry, key: dict) -> bool:
    return isinstance(entry, dict) and all(entry.get(k) == v for k, v in key.items())


TITLE_WORDS = 16  # a longer "heading" is a paragraph the parser took for one (seen in Chroma's pubmed corpus)


def document_title(doc: Document) -> str:
    """The file's own title (DOCX properties, HTML <title>), else its first heading when it is
    short enough to be one, else its file name."""
    from pathlib import PurePath

    import re

    for title in (doc.metadata.get("title"), doc.metadata.get("first_heading")):
        title = re.sub(r"^#{1,6}\s+|\s+#+\s*$", "", str(title or "").strip())  # stored before parse dropped "#"
        if title and len(title.split()) <= TITLE_WORDS:
            return squash(title)
    return PurePath(doc.path).stem
