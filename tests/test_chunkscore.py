"""ChunkScore: semantic dispersion against the spec's formula (and its trap), logical independence
arithmetic with a rule-based scorer (an arithmetic test), and the real SmolLM2 seeing a boundary."""
from __future__ import annotations

import math

import numpy as np
import pytest

from chunkctl.evaluation.chunkscore import chunk_score, logical_independence, semantic_dispersion
from chunkctl.llm import LLM, Completion, TokenLogprob


class RuleScorer:
    """The spec's RuleTokenScorer: a word costs 3 nats, 1 nat when the context (or the text before
    it) already has it."""

    name, model_id, where = "rule", "rule", "-"

    def complete(self, req):
        seen = set(req.prompt.lower().split())
        toks = []
        for w in req.score.split():
            toks.append(TokenLogprob(w, -1.0 if w.lower() in seen else -3.0))
            seen.add(w.lower())
        return Completion(logprobs=tuple(toks))


class Words:
    def embed(self, texts):
        vocab = sorted({w for t in texts for w in t.lower().split()} | {"pad1", "pad2", "pad3"})
        m = np.array([[t.lower().split().count(w) for w in vocab] for t in texts], dtype=float)
        return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_semantic_dispersion_centres_each_vector_over_its_features():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3, 8))
    zc = z - z.mean(axis=1, keepdims=True)
    want = np.log(np.linalg.det(zc @ zc.T + 1e-3 * np.eye(3))) / 3
    assert semantic_dispersion(z) == pytest.approx(want)
    wrong = z - z.mean(axis=0, keepdims=True)  # centring across chunks: the trap
    assert semantic_dispersion(z) != pytest.approx(np.log(np.linalg.det(wrong @ wrong.T + 1e-3 * np.eye(3))) / 3)
    same = np.repeat(z[:1], 3, axis=0)  # identical chunks: a degenerate volume, a very low score
    assert semantic_dispersion(same) < semantic_dispersion(z)


def test_logical_independence_by_hand():
    llm = LLM(RuleScorer())
    # "b c" after "a b": b is known (1), c is new (3): mean 2 vs 3 alone -> exp(2 - 3)
    assert logical_independence(["a b", "b c"], llm) == pytest.approx(math.exp(-1))
    assert logical_independence(["a b", "b c"], llm, li_mode="nll") == pytest.approx(2 / 3)
    assert logical_independence(["a b", "c d"], llm) == pytest.approx(1.0)  # a clean boundary
    assert logical_independence(["only one"], llm) == 1.0


def test_chunk_score_combines_with_lambda():
    s = chunk_score(["a b", "c d", "e f"], LLM(RuleScorer()), Words())
    assert s.li == pytest.approx(1.0) and not s.single_chunk
    assert s.score == pytest.approx(0.3 * s.li + 0.7 * s.sd)
    assert chunk_score(["a b"], LLM(RuleScorer()), Words()).single_chunk


def test_real_model_sees_a_repeated_passage_as_a_weak_boundary():
    from pathlib import Path

    from chunkctl.llm.local import LocalBackend

    llm = LLM(LocalBackend(cache_dir=Path("~/.cache/chunkctl/models").expanduser()))
    passage = "The seed library lends packets of tomato, bean and squash seeds to members every spring."
    unrelated = "Interest rates on the bonds were raised twice during the third quarter of the year."
    assert logical_independence([passage, passage], llm) < 0.5 < logical_independence([passage, unrelated], llm)


def test_eval_chunkscore_with_the_embedded_model_and_its_cache(cli, tmp_path):
    import json

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Seed banks keep seeds cold and dry.\n\nVolunteers test germination every "
                                "ten years.\n\nThe bonds paid interest twice a year.\n")
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"question": "How are seeds kept?", "doc": "a.txt", "answer": "cold and dry"}) + "\n")
    args = ["eval", "--qa", qa, "--corpus", docs, "--db", tmp_path / "s.duckdb", "--mode", "bm25",
            "-c", "sentence:size=12", "--chunkscore", "--json", "-"]
    code, out, err = cli(*args)
    assert code == 0, err
    row = json.loads(out)["results"][0]
    assert row["chunkscore"] == pytest.approx(0.3 * row["chunkscore_li"] + 0.7 * row["chunkscore_sd"])
    assert row["chunkscore_li"] > 0 and row["chunkscore_single"] == 0
    assert "LLM, ChunkScore: 4 call(s), 0 from the cache" in err  # 2 boundaries x (conditioned, alone)
    code, out2, err = cli(*args)
    assert code == 0 and "LLM, ChunkScore: 0 call(s), 4 from the cache" in err
    assert json.loads(out2)["results"][0]["chunkscore"] == row["chunkscore"]
