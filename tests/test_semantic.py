"""The embedding chunkers' arithmetic (thresholds, buffered distances, Chroma's DP, late pooling
windows) against direct computations, and their behaviour with the real packaged MiniLM."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from chunkctl.chunkers import ChunkContext, chunk_document, parse_spec
from chunkctl.chunkers import semantic as sem
from chunkctl.chunkers.cluster import band_dots, segment
from chunkctl.chunkers.late import pool_spans, windows
from chunkctl.embed import get_embedder
from chunkctl.parse.text import paragraphs
from chunkctl.types import Document

CTX = ChunkContext(device="cpu")


def _doc(text: str) -> Document:
    return Document("d", "mem", "0", "text/plain", text, paragraphs(text))


def test_breakpoint_thresholds_match_numpy():
    d = np.array([0.1, 0.5, 0.2, 0.9, 0.15, 0.3, 0.8, 0.05, 0.4, 0.35])
    assert (sem.breakpoints(d, "percentile", 80) == (d > np.percentile(d, 80))).all()
    assert (sem.breakpoints(d, "std", 1) == (d > d.mean() + d.std())).all()
    q1, q3 = np.percentile(d, [25, 75])
    assert (sem.breakpoints(d, "iqr", 0) == (d > d.mean() + 1.5 * (q3 - q1))).all()  # 0 = default 1.5
    g = np.gradient(d)
    assert (sem.breakpoints(d, "gradient", 70) == (g > np.percentile(g, 70))).all()
    assert sem.breakpoints(d, "percentile", 0).sum() == 1  # default 95: only the largest distance


def test_buffered_distances_are_distances_between_window_means():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(9, 5))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    for b in (0, 1, 2):
        want = []
        comb = [v[max(0, i - b):i + b + 1].sum(0) for i in range(9)]
        comb = [c / np.linalg.norm(c) for c in comb]
        want = [1 - comb[i] @ comb[i + 1] for i in range(8)]
        assert np.allclose(sem.buffered_distances(iter(v), 9, b), want)


def _brute_force(vecs, max_cluster):
    """Chroma's objective by enumeration: every composition of n into runs of <= max_cluster."""
    s = vecs @ vecs.T
    n = len(vecs)
    mu = s[np.triu_indices(n, 1)].mean()
    s = s - mu
    np.fill_diagonal(s, 0)
    best, best_runs = -np.inf, None
    for cuts in itertools.product([0, 1], repeat=n - 1):
        bounds = [0] + [i + 1 for i, c in enumerate(cuts) if c] + [n]
        runs = list(zip(bounds, bounds[1:]))
        if any(e - a > max_cluster for a, e in runs):
            continue
        total = sum(s[a:e, a:e].sum() for a, e in runs)
        if total > best + 1e-9:
            best, best_runs = total, [(a, e - 1) for a, e in runs]
    return best, best_runs


@pytest.mark.parametrize("seed", range(6))
def test_cluster_dp_finds_the_optimum_of_chromas_objective(seed):
    rng = np.random.default_rng(seed)
    n = 3 + seed % 6
    vecs = rng.normal(size=(n, 4)) + (rng.normal(size=(1, 4)) if seed % 2 else 0)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    band, total, sq = band_dots(iter(vecs), n, 3)
    mu = (total @ total - sq) / (n * (n - 1))
    runs = segment(band, mu, 3)
    s = vecs @ vecs.T - mu
    np.fill_diagonal(s, 0)
    got = sum(s[a:e + 1, a:e + 1].sum() for a, e in runs)
    best, _ = _brute_force(vecs, 3)
    assert np.isclose(got, best) and all(e - a < 3 for a, e in runs)
    assert [a for a, _ in runs][0] == 0 and all(runs[i][1] + 1 == runs[i + 1][0] for i in range(len(runs) - 1))


def test_cluster_compat_reproduces_chromas_initialisation_quirk():
    # Orthogonal pieces: every pair's similarity is below the mean, so every run of two or more
    # pieces has a negative reward; Chroma's dp (initialised to 0) then sends the last run back to
    # piece 0, past the size limit, and chunkctl's default (-inf) keeps single pieces.
    vecs = np.eye(4)
    band, total, sq = band_dots(iter(vecs), 4, 2)
    mu = (total @ total - sq) / 12
    assert mu == 0  # orthogonal: all off-diagonal similarities are 0, so every reward is exactly 0
    vecs = np.array([[1, 0], [-1, 0], [1, 0], [-1, 0]], dtype=float)  # neighbours opposite
    band, total, sq = band_dots(iter(vecs), 4, 2)
    mu = (total @ total - sq) / 12
    assert segment(band, mu, 2) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert segment(band, mu, 2, compat=True) == [(0, 3)]  # one run of 4 pieces, max_cluster 2


def test_late_windows_give_every_token_to_exactly_one_window():
    for total, width in ((10, 20), (100, 20), (101, 16), (510, 510), (1000, 510)):
        wins = windows(total, width)
        owned = [t for _, _, a, z in wins for t in range(a, z)]
        assert owned == list(range(total))
        assert all(s <= a < z <= e and e - s <= width for s, e, a, z in wins)


def test_late_whole_document_span_is_the_mean_of_its_token_states():
    emb = get_embedder("minilm-onnx")
    text = "The lighthouse keeper climbed the stairs. She lit the lamp at dusk."
    vecs, counts = pool_spans(CTX, text, emb, [(0, len(text))], 510)
    idx = CTX.tokens(text, "minilm")
    states = emb.token_states([idx.ids_in(0, len(text))])[0]
    mean = states.mean(0)
    assert counts[0] == len(states)
    assert np.allclose(vecs[0], mean / np.linalg.norm(mean), atol=1e-5)


# Own text: the second paragraph names its subject only as "it".
REFERENT = ("The Aldermoor viaduct carries the northern railway across the Tay gorge on forty stone arches.\n\n"
            "It was finished in 1871 and still takes twelve freight trains a day.\n\n"
            "Farmers in the valley below grow barley and keep sheep on the upper slopes.")


def test_late_vectors_situate_a_chunk_that_says_it():
    emb = get_embedder("minilm-onnx")
    late = chunk_document(_doc(REFERENT), parse_spec("late:base=recursive,size=24"), CTX)
    assert len(late) == 3 and late[1].text.startswith("It was finished")
    # the answer ("twelve freight trains a day") is in the chunk that calls the viaduct "it"
    query = emb.embed(["How many trains cross the Aldermoor viaduct each day?"])[0]
    isolated = emb.embed([c.text for c in late])
    situated = np.stack([c.embedding[1] for c in late])
    assert all(c.embedding[0] == emb.model_id for c in late)
    # alone, the chunk loses to the one naming the viaduct; situated, it moves towards the query and wins
    assert int(np.argmax(isolated @ query)) == 0
    assert situated[1] @ query > isolated[1] @ query + 0.1
    assert int(np.argmax(situated @ query)) == 1
    # and its vector depends on the context: change the referent, the vector changes
    other = chunk_document(_doc(REFERENT.replace("Aldermoor viaduct carries the northern railway",
                                                 "old mill pond feeds the river")),
                           parse_spec("late:base=recursive,size=24"), CTX)
    assert other[1].text == late[1].text and other[1].embedding[1] @ late[1].embedding[1] < 0.99


TWO_TOPICS = " ".join([
    "Sourdough starts with a culture of wild yeast and lactic bacteria.",
    "The baker feeds the starter with flour and water every day.",
    "A long, cold proof gives the loaf its sour flavour and open crumb.",
    "Bread is baked in a hot oven, often inside a covered cast-iron pot.",
    "The Jupiter system has ninety-five known moons.",
    "Ganymede, the largest moon, is bigger than the planet Mercury.",
    "Io is covered in active volcanoes driven by tidal heating.",
    "Europa hides a salty ocean beneath its icy crust.",
])


@pytest.mark.parametrize("spec", ["semantic:amount=90", "semantic:threshold=std,amount=1.5", "semantic-double"])
def test_semantic_chunkers_split_between_topics(spec):
    chunks = chunk_document(_doc(TWO_TOPICS), parse_spec(spec), CTX)
    starts = [c.text for c in chunks]
    assert any(t.startswith("The Jupiter system") for t in starts), starts
    assert not any("oven" in t and "Jupiter" in t for t in starts)


def test_semantic_embeds_in_blocks(monkeypatch):
    """Memory holds one block of sentence vectors at a time, never the whole document's."""
    calls = []
    real = CTX.embed_spans

    def counting(text, embedder, spans):
        calls.append(len(spans))
        return real(text, embedder, spans)

    monkeypatch.setattr(sem, "EMBED_BLOCK", 3)
    monkeypatch.setattr(CTX, "embed_spans", counting)
    chunk_document(_doc(TWO_TOPICS), parse_spec("semantic"), CTX)
    chunk_document(_doc(TWO_TOPICS), parse_spec("semantic-double"), CTX)
    assert calls and max(calls) <= 3 and sum(calls) == 16
