"""A scriptable OpenAI-compatible server on 127.0.0.1 for the fault tests: each POST takes the next
step of a script (an HTTP error, a delay, a truncated or non-JSON body, a given reply), then falls
back to a well-formed default reply. It records every request and the most requests in flight."""
from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


def reply_for(path: str, body: dict[str, Any], text: str) -> dict[str, Any]:
    usage = {"prompt_tokens": 10, "completion_tokens": max(1, len(text.split()))}
    if path.endswith("/chat/completions"):
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        return {"model": body.get("model"), "choices": [choice], "usage": usage}
    if body.get("echo"):  # vLLM-style prompt log-probs: one token per word, the first unscored
        prompt = body["prompt"]
        toks = re.findall(r"\s*\S+", prompt)
        offs, pos = [], 0
        for t in toks:
            offs.append(pos)
            pos += len(t)
        lps = [None] + [-0.5 * (i + 1) for i in range(len(toks) - 1)]
        lp = {"tokens": toks, "token_logprobs": lps, "text_offset": offs, "top_logprobs": [None] * len(toks)}
        return {"model": body.get("model"), "usage": usage,
                "choices": [{"index": 0, "text": prompt, "logprobs": lp, "finish_reason": "length"}]}
    return {"model": body.get("model"), "usage": usage,
            "choices": [{"index": 0, "text": text, "finish_reason": "stop"}]}


class FaultServer:
    def __init__(self, answer: Callable[[str, dict], str] | None = None, models=("fault-model",),
                 model_info: dict | None = None):
        self.script: deque = deque()
        self.requests: list[tuple[str, dict]] = []
        self.answer = answer or (lambda path, body: "fine")
        self.models = models
        self.model_info = model_info or {}  # extra fields of each GET /models entry (max_model_len)
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):
                self._json(200, {"data": [{"id": m, **server.model_info} for m in server.models]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                with server._lock:
                    server.requests.append((self.path, body))
                    step = server.script.popleft() if server.script else None
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._step(step, body)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _step(self, step, body):
                kind, *args = step or ("ok",)
                if kind == "status":  # ("status", code, headers, text)
                    code, headers, text = args
                    data = text.encode()
                    self.send_response(code)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                elif kind == "sleep":  # ("sleep", seconds): a slow reply
                    time.sleep(args[0])
                    self._json(200, reply_for(self.path, body, server.answer(self.path, body)))
                elif kind == "truncate":  # promise more bytes than are sent, then hang up
                    data = json.dumps(reply_for(self.path, body, "cut")).encode()
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data) + 100))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                elif kind == "trickle":  # ("trickle", seconds per byte): a valid reply, one byte at a time
                    data = json.dumps(reply_for(self.path, body, "slow")).encode()
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    try:
                        for i in range(len(data)):
                            self.wfile.write(data[i:i + 1])
                            self.wfile.flush()
                            time.sleep(args[0])
                    except OSError:  # the client gave up
                        self.close_connection = True
                elif kind == "big":  # ("big", n bytes): a reply whose text is n bytes long
                    pad = '"' + "x" * args[0] + '"'
                    data = ('{"choices": [{"index": 0, "message": {"role": "assistant", "content": ' + pad
                            + '}, "finish_reason": "stop"}]}').encode()
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    try:
                        self.wfile.write(data)
                    except OSError:
                        self.close_connection = True
                elif kind == "nonjson":
                    self._raw(200, b"<html>502 Bad Gateway from a proxy</html>", "text/html")
                elif kind == "text":  # ("text", reply): this reply instead of the default one
                    self._json(200, reply_for(self.path, body, args[0]))
                elif kind == "raw":  # ("raw", dict): this exact JSON body
                    self._json(200, args[0])
                elif kind == "reply":  # ("reply", fn): the JSON body fn(path, request body) returns
                    self._json(200, args[0](self.path, body))
                else:
                    self._json(200, reply_for(self.path, body, server.answer(self.path, body)))

            def _json(self, code, obj):
                self._raw(code, json.dumps(obj).encode(), "application/json")

            def _raw(self, code, data, ctype):
                self.send_response(code)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def posts(self) -> int:
        return len(self.requests)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
