"""What QChunker and MoM share: the model partitions numbered sentences, window by window.

The model never writes chunk text. It sees a window of the document as numbered sentences and
answers, as JSON, the number of the sentence where each chunk begins (with whatever it says about
that chunk: a question, an outline entry, core content). Numbers become source offsets through the
sentence bounds, so offsets are exact whatever the model answers. (The papers' models write
``head[MASK]tail`` anchors that are searched for in the text; a sentence number is the same
information, needs no fuzzy search, and a JSON-schema enum lets even a small model answer validly.)

Strings in the replies' schemas carry no ``maxLength``: llama.cpp turns it into a grammar that
halved generation speed (one segmentation reply: 129 s with it, 68 s without); ``max_tokens`` and
``maxItems`` bound a reply instead.

Long documents: windows of whole sentences sized by the model's context overlap by a quarter;
each window *owns* the sentences from the middle of its overlap with the previous window to the
middle of its overlap with the next, and only the chunk starts it proposes inside what it owns are
kept. The stitched starts are therefore increasing, and every sentence is decided by one window.
"""
from __future__ import annotations

from typing import Any, Sequence

from chunkctl.chunkers.groups import fit_prefix
from chunkctl.tokens import TokenIndex

# Room in a window's request for the instructions, an outline and the reply, beside the sentences;
# and the share of the model's tokens the chunker's tokenizer may fill (tokenizers differ).
PROMPT_RESERVE = 700
TOKENIZER_MARGIN = 0.8
MAX_CHUNKS_PER_WINDOW = 16  # a reply lists every chunk of its window: keep it short enough to be exact


def window_tokens(llm, window: int, size: int, answer_tokens: int) -> int:
    """``window`` when given; else what the model's context holds (minus the prompt and the reply),
    at most MAX_CHUNKS_PER_WINDOW chunks of ``size``."""
    if window:
        return window
    room = int((llm.context_length - PROMPT_RESERVE - answer_tokens) * TOKENIZER_MARGIN)
    return max(size, min(room, MAX_CHUNKS_PER_WINDOW * size))


def sentence_windows(idx: TokenIndex, bounds: Sequence[tuple[int, int]], window: int) -> list[tuple[int, int]]:
    """Sentence ranges [a, b) of at most ``window`` tokens (at least one sentence each); each next
    window re-reads about a quarter of the previous one."""
    n, out, a = len(bounds), [], 0
    while True:
        b = fit_prefix(idx, bounds, a, n, window)
        out.append((a, b))
        if b >= n:
            return out
        nxt = b
        while nxt - 1 > a and idx.count(bounds[nxt - 1][0], bounds[b - 1][1]) <= window // 4:
            nxt -= 1
        a = nxt


def owned_ranges(windows: Sequence[tuple[int, int]], n: int) -> list[tuple[int, int]]:
    """The sentences each window decides: from the middle of the overlap with the previous window
    to the middle of the overlap with the next (so the ranges tile 0..n)."""
    firsts = [0] + [(a + prev_b) // 2 for (a, _), (_, prev_b) in zip(windows[1:], windows)]
    return list(zip(firsts, firsts[1:] + [n]))


def numbered(text: str, bounds: Sequence[tuple[int, int]], a: int, b: int) -> str:
    """Sentences a..b-1 as ``[1] ...`` lines, whitespace collapsed (for display only)."""
    return "\n".join(f"[{k}] {' '.join(text[s:e].split())}" for k, (s, e) in enumerate(bounds[a:b], start=1))


def most_chunks(idx: TokenIndex, bounds: Sequence[tuple[int, int]], a: int, b: int, size: int) -> int:
    """How many chunks a reply for sentences a..b-1 may list: chunks average at least a quarter of
    ``size`` tokens (a bound on the reply's length: small models otherwise list until max_tokens)."""
    return max(2, min(b - a, -(-4 * idx.count(bounds[a][0], bounds[b - 1][1]) // size)))


def first_sentence_schema(m: int) -> dict:
    """``first``: a sentence number of the window, 1..m (an enum: a grammar for llama.cpp)."""
    return {"enum": list(range(1, m + 1))}


def clean_starts(items: Sequence[dict], m: int, stats, who: str) -> list[tuple[int, dict]]:
    """(0-based sentence, item) in increasing order from the model's ``first`` numbers. Numbers
    outside 1..m cannot be placed and are dropped; repeated or out-of-order numbers are sorted and
    the first item of a repeat is kept. Each repair is counted as a fallback under ``who``."""
    out: dict[int, dict] = {}
    last, disorder = 0, False
    for item in items:
        k = item.get("first") if isinstance(item, dict) else None
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= m:
            stats.fallback(f"{who}: chunk start not in the window")
            continue
        disorder |= k <= last
        last = max(last, k)
        out.setdefault(k - 1, item)
    if disorder:
        stats.fallback(f"{who}: chunk starts out of order")
    return sorted(out.items())


def stitch(proposals: Sequence[Sequence[tuple[int, Any]]], owned: Sequence[tuple[int, int]]
           ) -> list[tuple[int, Any]]:
    """Each window's (global sentence, payload) starts, kept inside the range the window owns; the
    document's first sentence always starts a chunk (payload None when no window proposed it)."""
    starts = [(s, p) for props, (lo, hi) in zip(proposals, owned) for s, p in props if lo <= s < hi]
    if not starts or starts[0][0] != 0:
        starts.insert(0, (0, None))
    return starts


def starts_to_groups(starts: Sequence[tuple[int, Any]], n: int) -> list[tuple[int, int, Any]]:
    """Sentence runs [a, b) with their payloads, one per start."""
    return [(s, nxt, p) for (s, p), nxt in zip(starts, [s for s, _ in starts[1:]] + [n]) if nxt > s]
