"""Every registered chunker, on every sample document and on generated text, keeps the contract:
exact offsets, ordered non-empty spans, size bounds, coverage, determinism."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chunkctl.chunkers import REGISTRY, ChunkContext, chunk_document, parse_spec
from chunkctl.llm import LLMSettings
from chunkctl.parse import kind_of, parse_bytes
from chunkctl.parse.text import paragraphs
from chunkctl.types import Document

from conftest import SAMPLE_DOCS

# Each registered chunker with its defaults, small sizes (to force splitting), and its options.
SPECS = [
    "fixed", "fixed:size=32,overlap=8", "fixed:size=40,tokenizer=cl100k",
    "recursive", "recursive:size=32,overlap=8", "recursive:size=48,tokenizer=cl100k",
    "recursive-lc", "recursive-lc:size=32,overlap=8", "recursive-lc:size=40,tokenizer=minilm",
    # LLM chunkers, with the real embedded SmolLM2 (completions cached for the determinism re-run)
    "ppl", "ppl:threshold=0.5,size=40,stride=300", "ppl:target=64,size=48,dynamic=true",
    "margin", "margin:context=pair,size=48", "margin:target=40,size=64,template=plain,window=2",
    "lumber", "lumber:window=96,size=40",
    "idc", "idc:size=40,window=4,beta=0.1,questions=4",
    "adaptive", "adaptive:candidates=fixed;size=32+sentence;size=24",
    # one sample each with the real model: outline + segmentation, and one memory sample (the review,
    # ChunkScore and RRF paths run against a scripted server in test_qchunker_mom.py: with SmolLM2
    # they took minutes per document)
    "qchunker:paths=1,complete=false,embed=question+original", "mom:paths=1",
    "sentence", "sentence:size=24,overlap=6",
    "structure", "structure:size=24", "structure:size=40,combine=false",
    "split-merge", "split-merge:size=40,overlap=8",
    "split-merge:size=40,merging=small_only,min_tokens=12", "split-merge:size=40,order=backward",
    # embedding chunkers, with the real packaged int8 MiniLM
    "semantic", "semantic:size=32,threshold=std", "semantic:threshold=gradient,min_size=16,size=48",
    "semantic:threshold=iqr,buffer=0,tokenizer=cl100k", "semantic-double", "semantic-double:size=32,merge_range=1",
    "cluster", "cluster:size=60,piece=20", "cluster:size=48,piece=16,tokenizer=minilm",
    "late", "late:base=sentence,size=32", "late:base=fixed,size=40,overlap=8,window=64",
]
# One context for the module: embedders load once. LLM answers are cached, so the determinism
# re-run checks that the same answers give the same chunks without paying for the calls again.
CTX = ChunkContext(device="cpu", llm_settings=LLMSettings(cache=str(Path(tempfile.mkdtemp()) / "llm.sqlite")))


def test_every_registered_chunker_is_covered():
    assert {s.split(":")[0] for s in SPECS} == set(REGISTRY)


def _doc(text: str, elements=None, pages=None) -> Document:
    return Document("d", "mem", "0", "text/plain", text, elements if elements is not None else paragraphs(text),
                    pages or [])


def check(doc: Document, spec: str, coverage: bool = True):
    chunker = parse_spec(spec)
    chunks = chunk_document(doc, chunker, CTX)
    again = chunk_document(doc, chunker, ChunkContext(device="cpu", llm_settings=CTX.llm_settings))
    assert chunks == again, "not deterministic"
    sizer = chunker  # whose size and tokenizer bound the chunks
    if chunker.name == "adaptive":  # the candidate the document chose
        sizer = parse_spec(chunks[0].metadata["adaptive"]) if chunks else parse_spec("recursive")
    size = sizer.size
    idx = CTX.tokens(doc.text, sizer.tokenizer)
    prev_start = -1
    for i, c in enumerate(chunks):
        assert doc.text[c.char_start:c.char_end] == c.text
        assert c.char_start < c.char_end and c.text.strip()
        assert c.seq == i and c.char_start >= prev_start
        assert c.strategy_id == chunker.strategy_id and c.doc_id == doc.doc_id
        prev_start = c.char_start
        assert c.n_tokens <= size, f"{spec}: chunk {i} has {c.n_tokens} tokens > {size}"
        # n_tokens is the chunk's own count, not a sum over pieces. cl100k's byte tokens can split one
        # character (CJK, emoji) between two tokens that a cut cannot separate: allow those.
        slack = 0 if sizer.tokenizer == "minilm" else 3
        assert abs(c.n_tokens - idx.count(c.char_start, c.char_end)) <= slack, f"{spec}: chunk {i}'s n_tokens"
        if doc.pages:
            assert c.page_start is not None and c.page_start <= c.page_end
    if coverage:
        covered = bytearray(len(doc.text))
        for c in chunks:
            covered[c.char_start:c.char_end] = b"\x01" * (c.char_end - c.char_start)
        missing = [i for i, ch in enumerate(doc.text) if ch.isalnum() and not covered[i]]
        assert not missing, f"{spec}: characters lost at {missing[:5]}"
    return chunks


@pytest.mark.parametrize("path", sorted(p.name for p in SAMPLE_DOCS.iterdir() if p.suffix != ".jsonl"))
@pytest.mark.parametrize("spec", SPECS)
def test_sample_documents(path, spec):
    f = SAMPLE_DOCS / path
    parsed = parse_bytes(f.read_bytes(), kind_of(f), f.suffix)
    chunks = check(_doc(parsed.text, parsed.elements, parsed.pages), spec)
    assert chunks, "a sample document produced no chunks"


# Text with the hard cases: CRLF, emoji (astral), combining marks, CJK, RTL, blank runs.
_alphabet = st.one_of(
    st.characters(codec="utf-8", exclude_categories=("Cs",)),
    st.sampled_from(["\r\n", "\n\n", " ", "\t", "e\u0301", "😀", "👩‍👩‍👧", "漢字", "مرحبا", ". ", "# ", "| a | b |\n"]),
)
texts = st.lists(_alphabet, max_size=400).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts, spec=st.sampled_from(SPECS))
def test_generated_text(text, spec):
    from chunkctl.parse.blocks import normalize

    check(_doc(normalize(text)), spec)


@settings(max_examples=30, deadline=None)
@given(text=texts)
def test_generated_markdown_through_the_parser(text):
    parsed = parse_bytes(text.encode("utf-8"), "markdown") if text else None
    if parsed is None:
        return
    for spec in ("structure:size=16", "recursive:size=16"):
        check(_doc(parsed.text, parsed.elements), spec)


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("text", ["", " ", "\n\n\n", "\t \r\n "])
def test_empty_and_whitespace_give_no_chunks(spec, text):
    assert chunk_document(_doc(text), parse_spec(spec), ChunkContext()) == []


def test_spec_errors_are_clear():
    with pytest.raises(ValueError, match="unknown chunker 'nope'"):
        parse_spec("nope")
    with pytest.raises(ValueError, match="has no parameter 'sise'"):
        parse_spec("recursive:sise=3")
    with pytest.raises(ValueError, match="size must be an integer"):
        parse_spec("fixed:size=big")
    with pytest.raises(ValueError, match="merging must be one of"):
        parse_spec("split-merge:merging=sideways")
    with pytest.raises(ValueError, match="overlap < size"):
        parse_spec("recursive:size=10,overlap=10")


def test_strategy_id_depends_on_every_parameter():
    ids = {parse_spec(s).strategy_id for s in ("recursive", "recursive:size=512", "recursive:overlap=8",
                                               "recursive:tokenizer=cl100k", "fixed")}
    assert len(ids) == 5
    assert parse_spec("recursive:size=256").strategy_id == parse_spec("recursive").strategy_id


def test_token_counts_are_exact_for_the_embedding_tokenizer():
    """n_tokens equals re-tokenizing the chunk text on its own (WordPiece, cut at whitespace)."""
    from chunkctl.tokens import get_tokenizer

    tok = get_tokenizer("minilm")
    text = (SAMPLE_DOCS / "guide.md").read_text()
    for spec in ("recursive:size=40", "sentence:size=40", "structure:size=40", "split-merge:size=40"):
        for c in chunk_document(_doc(text), parse_spec(spec), ChunkContext()):
            assert c.n_tokens == len(tok.encode_batch([c.text])[0]), (spec, c.text)


def test_fixed_windows_overlap_by_exactly_overlap_tokens():
    text = " ".join(f"word{i}" for i in range(300))
    chunks = chunk_document(_doc(text), parse_spec("fixed:size=50,overlap=10"), ChunkContext())
    assert [c.n_tokens for c in chunks[:-1]] == [50] * (len(chunks) - 1)
    from chunkctl.tokens import get_tokenizer

    tok = get_tokenizer("minilm")
    a, b = chunks[0], chunks[1]
    tail = tok.encode_batch([a.text])[0].ids[-10:]
    head = tok.encode_batch([b.text])[0].ids[:10]
    assert tail == head
