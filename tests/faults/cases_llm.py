"""Fault cases: a misbehaving OpenAI-compatible server on 127.0.0.1, and secrets."""
from __future__ import annotations

import json
import socket
from pathlib import Path

from faults.kit import case, docs_with_good, run


# -- the LLM server -------------------------------------------------------------------------------
def _llm_ingest(tmp: Path, script: list, *extra, timeout: float = 120, url: str | None = None, env=None):
    """Ingest one small document with the `keywords` enricher against a scripted server."""
    from llm_server import FaultServer

    server = FaultServer(answer=lambda path, body: '{"keywords": ["seed library"]}')
    server.script.extend(script)
    try:
        d = docs_with_good(tmp)
        db = tmp / "store.duckdb"
        r = run("--llm", "openai", "--llm-base-url", url or server.url, "--llm-retries", "1", *extra, "ingest", d,
                "--db", db, "--no-embed", "-c", "recursive:size=64", "--enrich", "keywords", db=db, timeout=timeout,
                env=env)
        return r, server
    finally:
        server.close()


def _llm_reject(r, *words) -> tuple[bool, str]:
    rej = next((x for x in r.rejects if x[1] == "enrich"), None)
    held = (r.code == 3 and rej is not None and all(w.lower() in rej[2].lower() for w in words)
            and r.stored("good.txt") and not r.traceback)
    return held, f"{r.summary()}; {('reject: ' + rej[2][:110]) if rej else 'no reject'}"


def _bad_reply(body: dict):
    return [("raw", body), ("raw", body)]  # the attempt and its JSON repair retry


@case("llm", "reply with choices: [\"...\"]", "reject (enrich), run goes on")
def _(tmp):
    return _llm_reject(_llm_ingest(tmp, _bad_reply({"choices": ["keywords"]}))[0], "choices")


@case("llm", "reply with content: 7", "reject (enrich), run goes on")
def _(tmp):
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": 7}, "finish_reason": "stop"}]}
    return _llm_reject(_llm_ingest(tmp, _bad_reply(body))[0], "not a string")


@case("llm", "usage.prompt_tokens: \"many\"", "the reply is used; the count is 0")
def _(tmp):
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": '{"keywords": ["seeds"]}'}}],
            "usage": {"prompt_tokens": "many", "completion_tokens": None}}
    r, _ = _llm_ingest(tmp, [("raw", body)] * 4)
    return r.code == 0 and not r.traceback and r.stored("good.txt"), r.summary()


@case("llm", "reply that is a JSON array", "reject (enrich), run goes on")
def _(tmp):
    return _llm_reject(_llm_ingest(tmp, _bad_reply([1, 2, 3]))[0], "not an object")


@case("llm", "logprobs of the wrong shape", "LLMError, not a crash")
def _(tmp):
    from chunkctl.llm import wire
    from chunkctl.llm.types import LLMError

    try:
        wire.completion({"choices": [{"text": "x", "logprobs": {"content": [{"token": 5}]}}]}, "m", 0.0)
    except LLMError as e:
        return True, f"LLMError: {e}"
    return False, "accepted"


@case("llm", "2.0 where the schema's enum wants an integer", "used as the integer 2")
def _(tmp):
    from llm_server import FaultServer

    from chunkctl.llm.client import LLM
    from chunkctl.llm.remote import OpenAIBackend
    from chunkctl.llm.types import chat

    server = FaultServer(answer=lambda path, body: '{"first": 2.0}')
    try:
        llm = LLM(OpenAIBackend(server.url, "m", retries=0))
        comp = llm.complete(chat("pick", schema={"type": "object", "properties": {"first": {"enum": [1, 2, 3]}},
                                                 "required": ["first"]}))
        value = comp.data["first"]
        llm.close()
        return type(value) is int and [10, 20, 30][value] == 30, f"data: {comp.data!r}"
    finally:
        server.close()


@case("llm", "HTML from a proxy instead of JSON", "retried, then reject with the cause")
def _(tmp):
    return _llm_reject(_llm_ingest(tmp, [("nonjson",)] * 6)[0], "not JSON")


@case("llm", "HTTP 500 once, then a good reply", "retried; stored, exit 0")
def _(tmp):
    r, _ = _llm_ingest(tmp, [("status", 500, {}, "overloaded")])
    return r.code == 0 and r.stored("good.txt") and not r.traceback, r.summary()


@case("llm", "Retry-After: 3600", "gives up at the request's deadline, not after hours")
def _(tmp):
    script = [("status", 429, {"Retry-After": "3600"}, "slow down")] * 10
    r, _ = _llm_ingest(tmp, script, "--llm-timeout", "4", timeout=120)
    held, seen = _llm_reject(r, "429")
    return held and r.seconds < 40, f"{seen}; {r.seconds:.1f} s"


@case("llm", "server trickling one byte per 50 ms", "attempt stopped at --llm-timeout")
def _(tmp):
    r, _ = _llm_ingest(tmp, [("trickle", 0.05)] * 6, "--llm-timeout", "2", timeout=120)
    held, seen = _llm_reject(r, "still arriving")
    return held and r.seconds < 30, f"{seen}; {r.seconds:.1f} s"


@case("llm", "a 150 MB reply", "not read past 16 MB; memory small")
def _(tmp):
    r, _ = _llm_ingest(tmp, [("big", 150 << 20)] * 6, timeout=120)
    held, seen = _llm_reject(r, "MB")
    return held and r.peak_rss_mb < 1000, f"{seen}; peak RSS {r.peak_rss_mb:.0f} MB"


@case("llm", "connection refused", "retried, reject with the cause")
def _(tmp):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    r, _ = _llm_ingest(tmp, [], "--llm-model", "m", url=f"http://127.0.0.1:{port}/v1")
    return _llm_reject(r, "ConnectError")


@case("llm", "body cut short", "retried; stored")
def _(tmp):
    r, _ = _llm_ingest(tmp, [("truncate",)])
    return r.code == 0 and r.stored("good.txt") and not r.traceback, r.summary()


KEY = "sk-test-SECRET-0123456789"


@case("security", "API key echoed by the server in an error body", "never in rejects, runs, stdout or stderr")
def _(tmp):
    script = [("status", 401, {}, f'{{"error": "invalid key {KEY} for this org"}}')] * 4
    r, _ = _llm_ingest(tmp, script, env={"CHUNKCTL_LLM_API_KEY": KEY})
    import duckdb

    con = duckdb.connect(str(r.db), read_only=True)
    stored = json.dumps(con.execute("SELECT * FROM rejects").fetchall() + con.execute("SELECT * FROM runs").fetchall(),
                        default=str)
    con.close()
    leaked = [w for w, text in (("store", stored), ("stdout", r.out), ("stderr", r.err)) if KEY in text]
    held, seen = _llm_reject(r, "***")
    return held and not leaked, f"{seen}; leaked in: {leaked or 'nothing'}"


@case("security", "credentials in --llm-base-url", "runs.command and messages show ***")
def _(tmp):
    from llm_server import FaultServer

    server = FaultServer(answer=lambda path, body: '{"keywords": ["seed"]}')
    try:
        url = server.url.replace("http://", "http://alice:PASSWORD-XYZ@") + "?api-key=QUERYKEY-123"
        r, _ = _llm_ingest(tmp, [], url=url)
    finally:
        server.close()
    import duckdb

    con = duckdb.connect(str(r.db), read_only=True)
    command = con.execute("SELECT command FROM runs").fetchall()
    con.close()
    text = json.dumps(command) + r.out + r.err
    leaked = [s for s in ("PASSWORD-XYZ", "QUERYKEY-123") if s in text]
    held = not leaked and r.code in (0, 3) and "***" in json.dumps(command) and not r.traceback
    return held, f"{r.summary()}; runs.command: {command[0][0][:90] if command else None}; leaked: {leaked or 'nothing'}"


@case("store", "global options before the command", "runs.command is the whole command line")
def _(tmp):
    d = docs_with_good(tmp)
    db = tmp / "store.duckdb"
    r = run("--llm-timeout", "30", "ingest", d, "--db", db, "--no-embed", "-q", db=db)
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    command = con.execute("SELECT command FROM runs").fetchone()[0]
    con.close()
    return r.code == 0 and command.startswith("--llm-timeout 30 ingest "), f"runs.command: {command[:80]}"
