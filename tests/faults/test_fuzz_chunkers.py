"""The deterministic chunkers against adversarial Unicode: combining marks, RTL, ZWJ emoji,
zero-width and other invisible characters, CR/CRLF/NEL/LS mixes, long runs without white space.

`make test` runs a few hundred cases; the campaign is `HYPOTHESIS_PROFILE=fuzz` (10,000 cases per
chunker; tests/conftest.py registers the profiles):

    HYPOTHESIS_PROFILE=fuzz .venv/bin/python -m pytest tests/faults/test_fuzz_chunkers.py -q
"""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chunkctl.chunkers import ChunkContext, chunk_document, parse_spec
from chunkctl.parse.blocks import normalize
from chunkctl.parse.text import paragraphs
from chunkctl.tokens import _MAX_SEGMENT, _MAX_WORD
from chunkctl.types import Document

DETERMINISTIC = ["fixed:size=8", "fixed:size=16,overlap=4", "fixed:size=12,tokenizer=cl100k", "recursive:size=16",
                 "recursive:size=24,overlap=6", "recursive:size=16,tokenizer=cl100k", "recursive-lc:size=16",
                 "sentence:size=16", "sentence:size=24,overlap=6", "structure:size=16", "split-merge:size=24",
                 "split-merge:size=16,order=backward"]
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u034f", "\u180e", "\u202e", "\u2066"]
PIECES = ["e\u0301", "a\u0300\u0316\u0354", "\u05e9\u05c1\u05b8", "مرحبا", "שלום", "👩\u200d🔬", "👨\u200d👩\u200d👧",
          "🏳\ufe0f\u200d🌈", "🇫🇷", "漢字", "한국어", "\r\n", "\r", "\n", "\n\n", "\x85", "\u2028", "\u2029", "\t",
          " ", "\u00a0", "\u3000", ". ", "? ", "# ", "- ", "| a | b |\n", "x" * 130, "ab" * 70]
texts = st.lists(st.one_of(st.sampled_from(INVISIBLE), st.sampled_from(PIECES),
                           st.characters(codec="utf-8", exclude_categories=("Cs",))), max_size=300).map("".join)
CTX = ChunkContext(device="cpu")


@pytest.mark.parametrize("spec", DETERMINISTIC)
@given(raw=texts)
def test_offsets_coverage_and_size_hold(spec, raw):
    text = normalize(raw)
    doc = Document("d", "mem", "0", "text/plain", text, paragraphs(text), [])
    chunker = parse_spec(spec)
    chunks = chunk_document(doc, chunker, CTX)
    covered = bytearray(len(text))
    prev = -1
    for i, c in enumerate(chunks):
        assert text[c.char_start:c.char_end] == c.text, f"{spec}: chunk {i}'s offsets"
        assert c.char_start < c.char_end and c.char_start >= prev and c.seq == i
        prev = c.char_start
        # cl100k's byte tokens can straddle characters (an emoji's bytes, a ZWJ sequence) where no cut
        # between characters separates them: the allowance test_chunker_invariants makes too
        slack = 0 if chunker.tokenizer == "minilm" else 3
        assert c.n_tokens <= chunker.size + slack, f"{spec}: chunk {i} has {c.n_tokens} tokens"
        # the documented bound: a token covers at most _MAX_WORD non-space characters (one segment aside)
        assert len(c.text.split()) == 0 or sum(map(len, c.text.split())) <= _MAX_WORD * chunker.size + _MAX_SEGMENT
        covered[c.char_start:c.char_end] = b"\x01" * (c.char_end - c.char_start)
    lost = [i for i, ch in enumerate(text) if not ch.isspace() and not covered[i]]
    assert not lost, f"{spec}: characters lost at {lost[:5]}: {[text[i] for i in lost[:5]]}"
