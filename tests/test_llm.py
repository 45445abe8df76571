"""The LLM layer against a fault-injecting OpenAI-compatible server on 127.0.0.1 (retries, errors,
structured output, echo scoring), the completion cache, concurrency and the token budget, and the
wire-format parsers. The real local model is exercised in test_llm_local.py."""
from __future__ import annotations

import json
import multiprocessing
import sqlite3
import time

import pytest

from chunkctl.llm import LLM, BudgetExhausted, LLMError, Request, SchemaError, chat
from chunkctl.llm.cache import CompletionCache
from chunkctl.llm.jsonout import parse_json
from chunkctl.llm.remote import OpenAIBackend, _retry_after
from chunkctl.llm.types import Completion, TokenLogprob, cache_key
from chunkctl.llm.wire import parse_logprobs, pick_candidates
from llm_server import FaultServer

YES_NO = {"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}}, "required": ["answer"]}


def backend(server, **kw) -> OpenAIBackend:
    kw = {"retries": 3, "backoff": 0.01, "timeout": 2.0, **kw}
    return OpenAIBackend(server.url, "fault-model", **kw)


# -- retries and errors ------------------------------------------------------------------------
def test_500_then_ok_is_retried(server):
    server.script.extend([("status", 500, {}, "boom"), ("status", 503, {}, "busy")])
    c = LLM(backend(server)).complete(chat("hi"))
    assert c.text == "fine" and server.posts() == 3


def test_429_honours_retry_after(server):
    server.script.append(("status", 429, {"Retry-After": "1"}, "slow down"))
    t0 = time.perf_counter()
    c = LLM(backend(server, backoff=0.0)).complete(chat("hi"))
    assert c.text == "fine" and server.posts() == 2
    assert time.perf_counter() - t0 >= 0.95  # waited as told, not the ~0 s backoff


def test_timeout_is_retried(server):
    server.script.append(("sleep", 1.5))
    c = LLM(backend(server, timeout=0.5)).complete(chat("hi"))
    assert c.text == "fine" and server.posts() == 2


def test_truncated_and_non_json_bodies_are_retried(server):
    server.script.extend([("truncate",), ("nonjson",)])
    c = LLM(backend(server)).complete(chat("hi"))
    assert c.text == "fine" and server.posts() == 3


def test_last_error_names_server_and_cause_and_nothing_is_cached(server, tmp_path):
    server.script.extend([("status", 500, {}, "database on fire")] * 3)
    llm = LLM(backend(server, retries=2), cache=CompletionCache(tmp_path / "c.sqlite"))
    with pytest.raises(LLMError) as e:
        llm.complete(chat("hi"))
    msg = str(e.value)
    assert server.url in msg and "fault-model" in msg and "3 attempt" in msg and "database on fire" in msg
    assert llm.stats.errors == 1 and llm.cache.stats()["entries"] == 0
    assert llm.complete(chat("hi")).text == "fine"  # the failure was not cached: a new call
    assert server.posts() == 4


def test_client_error_is_not_retried(server):
    server.script.append(("status", 400, {}, '{"error": "bad model"}'))
    with pytest.raises(LLMError, match="HTTP 400"):
        LLM(backend(server)).complete(chat("hi"))
    assert server.posts() == 1


def test_unreachable_server_is_reported():
    b = OpenAIBackend("http://127.0.0.1:9/v1", "m", retries=1, backoff=0.01)
    with pytest.raises(LLMError, match=r"127\.0\.0\.1:9/v1 \(m\): gave up after 2 attempt\(s\): Connect"):
        LLM(b).complete(chat("hi"))


def test_model_defaults_to_the_first_the_server_lists():
    s = FaultServer(models=("served-a", "served-b"))
    try:
        b = OpenAIBackend(s.url, None, retries=0)
        assert b.model_id == "served-a"
        LLM(b).complete(chat("hi"))
        assert s.requests[-1][1]["model"] == "served-a"
    finally:
        s.close()


def test_api_key_goes_in_the_header_and_not_in_the_cache_key(server):
    b = backend(server, api_key="sk-secret")
    assert b._http.headers["authorization"] == "Bearer sk-secret"
    assert cache_key("openai", "m", chat("hi")) == cache_key("openai", "m", chat("hi"))
    assert "sk-secret" not in chat("hi").canonical()


# -- structured output ---------------------------------------------------------------------------
def test_schema_sent_as_response_format_and_parsed(server):
    server.script.append(("text", 'Sure: ```json\n{"answer": "yes"}\n```'))
    c = LLM(backend(server)).complete(chat("ok?", schema=YES_NO))
    assert c.data == {"answer": "yes"} and not c.repaired
    assert server.requests[0][1]["response_format"]["json_schema"]["schema"] == YES_NO


def test_invalid_reply_gets_one_repair_retry(server):
    server.script.extend([("text", '{"answer": "maybe"}'), ("text", '{"answer": "no"}')])
    llm = LLM(backend(server))
    c = llm.complete(chat("ok?", schema=YES_NO))
    assert c.data == {"answer": "no"} and c.repaired and llm.stats.repairs == 1 and llm.stats.calls == 2
    repair = server.requests[1][1]["messages"]
    assert repair[-2] == {"role": "assistant", "content": '{"answer": "maybe"}'}
    assert "not valid" in repair[-1]["content"] and "answer" in repair[-1]["content"]


def test_still_invalid_after_repair_is_a_clear_error_and_cached_as_such(server, tmp_path):
    server.script.extend([("text", "no json here"), ("text", '{"answer": 3}')])
    llm = LLM(backend(server), cache=CompletionCache(tmp_path / "c.sqlite"))
    with pytest.raises(SchemaError, match="answer") as e:
        llm.complete(chat("ok?", schema=YES_NO))
    assert "one repair retry" in str(e.value) and "not JSON" in str(e.value)
    assert llm.cache.stats()["entries"] == 1 and llm.cache.stats()["invalid"] == 1
    # The re-run gets the same verdict from the cache: no call, so the same fallback downstream.
    again = LLM(backend(server), cache=CompletionCache(tmp_path / "c.sqlite"))
    with pytest.raises(SchemaError, match=r"one repair retry.*\(cached\)"):
        again.complete(chat("ok?", schema=YES_NO))
    assert server.posts() == 2 and again.stats.calls == 0 and again.stats.cache_hits == 1
    assert again.stats.errors == 1
    server.script.append(("text", '{"answer": "yes"}'))
    assert again.complete(chat("ok?", schema=YES_NO, seed=1)).data == {"answer": "yes"}  # another request


def test_server_without_response_format_gets_the_schema_in_the_prompt(server):
    server.script.extend([("status", 400, {}, "unknown field: response_format"), ("text", '{"answer": "yes"}')])
    b = backend(server)
    c = LLM(b).complete(chat("ok?", schema=YES_NO))
    assert c.data == {"answer": "yes"} and b.native_schema is False
    second = server.requests[1][1]
    assert "response_format" not in second and "JSON schema" in second["messages"][-1]["content"]


# -- log-probs over HTTP ------------------------------------------------------------------------
def test_echo_scoring_reads_prompt_logprobs(server):
    c = LLM(backend(server)).complete(Request(prompt="The context", score=" of the text"))
    assert [t.token for t in c.logprobs] == [" of", " the", " text"]
    assert [t.start for t in c.logprobs] == [0, 3, 7]
    assert [t.logprob for t in c.logprobs] == [-1.0, -1.5, -2.0]  # the server's values for tokens 2..4
    assert c.scored_by == "fault-model"
    body = server.requests[0][1]
    assert body["echo"] is True and body["prompt"] == "The context of the text"


def test_scoring_falls_back_when_the_server_cannot_echo(server):
    server.script.append(("raw", {"choices": [{"text": "x", "logprobs": None}], "usage": {}}))

    class Scorer:
        name, model_id, where = "local", "tiny-scorer", "-"

        def complete(self, req):
            return Completion(logprobs=(TokenLogprob(req.score, -1.25),), scored_by="tiny-scorer")

    b = backend(server, fallback=Scorer)
    llm = LLM(b)
    c = llm.complete(Request(prompt="ctx", score=" text"))
    assert b.echo_scoring is False and c.scored_by == "tiny-scorer" and c.logprobs[0].logprob == -1.25
    assert "scoring by the local tiny-scorer" in llm.stats.line()  # the summary says who scored
    LLM(b).complete(Request(prompt="ctx", score=" more"))
    assert server.posts() == 1  # learned once: later scoring goes straight to the fallback


def test_parse_logprobs_reads_chat_legacy_and_llamacpp_shapes():
    chat_shape = {"content": [{"token": "Hi", "logprob": -0.1, "top_logprobs": [{"token": "Hi", "logprob": -0.1},
                                                                               {"token": "Yo", "logprob": -2.0}]},
                              {"token": "!", "logprob": -0.2, "top_logprobs": []}]}
    a = parse_logprobs(chat_shape)
    assert [(t.token, t.logprob, t.start) for t in a] == [("Hi", -0.1, 0), ("!", -0.2, 2)]
    assert a[0].top == (("Hi", -0.1), ("Yo", -2.0))
    legacy = {"tokens": ["A", " b"], "token_logprobs": [None, -0.3], "text_offset": [5, 6],
              "top_logprobs": [None, {" c": -1.0, " b": -0.3}]}
    b = parse_logprobs(legacy)
    assert [(t.token, t.logprob, t.start) for t in b] == [("A", None, 5), (" b", -0.3, 6)]
    assert b[1].top == ((" b", -0.3), (" c", -1.0))
    assert parse_logprobs(None) == ()


def test_pick_candidates():
    alts = (("2", -0.1), (" 1", -1.5), ("x", -3.0))
    assert pick_candidates(alts, ("1", "2", "3")) == {"1": -1.5, "2": -0.1, "3": None}


def test_retry_after_forms():
    assert _retry_after("2.5") == 2.5
    assert _retry_after(None) is None and _retry_after("soon") is None
    assert 0 <= _retry_after(time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 3))) <= 3.5


def test_parse_json_finds_the_value_and_says_what_is_wrong():
    assert parse_json('prose {"answer": "no"} more', YES_NO) == {"answer": "no"}
    with pytest.raises(SchemaError, match="is not JSON"):
        parse_json("none at all", YES_NO)
    with pytest.raises(SchemaError, match="answer"):
        parse_json('{"answer": "perhaps"}', YES_NO)


def test_request_validation():
    with pytest.raises(ValueError):
        Request()
    with pytest.raises(ValueError):
        Request(messages=chat("x").messages, score="y")
    with pytest.raises(ValueError):
        Request(prompt="a", score="")


# -- cache ----------------------------------------------------------------------------------------
def test_cache_identical_request_is_one_call_and_changes_are_new_calls(server, tmp_path):
    path = tmp_path / "c.sqlite"
    llm = LLM(backend(server), cache=CompletionCache(path))
    first = llm.complete(chat("hi", temperature=0.0))
    again = LLM(backend(server), cache=CompletionCache(path)).complete(chat("hi", temperature=0.0))
    assert server.posts() == 1 and again.cached and not first.cached and again.text == first.text
    llm.complete(chat("hi", temperature=0.7))  # a changed temperature
    assert server.posts() == 2
    other = LLM(OpenAIBackend(server.url, "other-model", retries=0), cache=CompletionCache(path))
    other.complete(chat("hi", temperature=0.0))  # a changed model
    assert server.posts() == 3
    assert llm.stats.cache_hits == 0 and CompletionCache(path).stats()["entries"] == 3


def _write_many(path: str, worker: int) -> None:
    cache = CompletionCache(path)
    for i in range(60):
        cache.put(f"{worker}-{i}", "openai", "m", "generate", Completion(text=f"w{worker} {i}", model="m"))


def test_concurrent_writers_do_not_corrupt_the_cache(tmp_path):
    path = str(tmp_path / "c.sqlite")
    CompletionCache(path)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(path, w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT count(*) FROM completions").fetchone()[0] == 240
    assert CompletionCache(path).get("3-59").text == "w3 59"


# -- concurrency, order, accounting, budget -------------------------------------------------------
def test_map_keeps_order_bounds_concurrency_and_accounts():
    s = FaultServer(answer=lambda path, body: "re: " + body["messages"][-1]["content"])
    try:
        s.script.extend([("sleep", 0.3 - 0.02 * i) for i in range(12)])  # later ones finish first
        llm = LLM(OpenAIBackend(s.url, "fault-model", retries=0), concurrency=4, price=(1.0, 2.0))
        outs = llm.map([chat(f"q{i}") for i in range(12)])
        assert [c.text for c in outs] == [f"re: q{i}" for i in range(12)]
        assert s.max_in_flight == 4
        st = llm.stats
        assert st.calls == 12 and st.prompt_tokens == 120 and st.completion_tokens == 24
        assert st.cost == pytest.approx((120 * 1.0 + 24 * 2.0) / 1e6)
        assert 0 < st.percentile(50) <= st.percentile(95) <= st.percentile(100)
        assert "12 call(s)" in st.line() and "cost $" in st.line()
    finally:
        s.close()


def test_budget_stops_cleanly_and_says_what_was_left():
    s = FaultServer()
    try:
        llm = LLM(OpenAIBackend(s.url, "fault-model", retries=0), concurrency=1, max_tokens_total=25)
        outs = llm.map([chat(f"q{i}") for i in range(6)], errors="return")
        done = [o for o in outs if not isinstance(o, Exception)]
        assert len(done) == 3  # 11 tokens each: the third call passes 25, the rest are not sent
        assert all(isinstance(o, BudgetExhausted) for o in outs[3:])
        assert s.posts() == 3 and llm.stats.undone == 3
        assert "3 not sent: token budget spent" in llm.stats.line()
        with pytest.raises(BudgetExhausted):
            llm.map([chat("one more")])
    finally:
        s.close()


def test_completion_round_trips_through_json():
    c = Completion(text="t", data={"a": [1]}, logprobs=(TokenLogprob("t", -0.5, 0, (("t", -0.5),)),),
                   candidates={"1": -0.2, "2": None}, prompt_tokens=3, completion_tokens=1, model="m")
    assert Completion.from_json(c.to_json()) == c
    assert json.loads(c.to_json())["candidates"] == {"1": -0.2, "2": None}
