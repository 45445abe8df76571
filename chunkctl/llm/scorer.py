"""Exact token scoring (and, for Hugging Face folders, generation) with ``transformers``.

llama.cpp returns log-probs of generated tokens only, so scoring a given text under a context runs
here: one forward pass over ``context ids + text ids`` and a log-softmax over the full vocabulary.
The context and the text are tokenized separately (as Meta-Chunking tokenizes each sentence), so a
token never straddles the boundary. With an empty context, the text is conditioned on the model's
BOS token, or on its end-of-text token when it has no BOS (the lm-eval-harness convention), so
every token of the text gets a log-prob. A context longer than the model's window loses its start.

Loading a GGUF through transformers dequantises it and converts its tokenizer, which takes ~30 s
for SmolLM2 here; the converted model is therefore kept as a plain Hugging Face folder under the
model cache (keyed by the GGUF's sha256) and later loads take under a second.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from chunkctl.llm.types import Completion, LLMError, Request, TokenLogprob


def hf_folder(gguf: Path, cache_dir: Path) -> Path:
    """A Hugging Face folder holding ``gguf`` dequantised to fp32, converted once and cached. Two
    processes converting at once both finish; the first rename wins and the other copy is dropped."""
    from chunkctl.pipeline import file_sha256

    target = cache_dir / f"{gguf.stem}-{file_sha256(gguf)[:16]}"
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet_transformers()
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=cache_dir))
    try:
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # A GGUF-loaded model refuses save_pretrained; a fresh model of the same config takes its weights.
        plain = AutoModelForCausalLM.from_config(loaded.config, dtype=torch.float32)
        plain.load_state_dict(loaded.state_dict())
        plain.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process got there first
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _quiet_transformers() -> None:
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


class HFModel:
    """A causal LM from a Hugging Face folder: scoring, next-token candidates, and plain generation
    (for folders; GGUF files generate through llama.cpp)."""

    def __init__(self, folder: Path, model_id: str, device: str = "cpu"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        _quiet_transformers()
        self.model_id, self.device = model_id, device
        self.tok = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to(device).eval()
        self.window = int(getattr(self.model.config, "max_position_embeddings", 2048) or 2048)
        self._lock = threading.Lock()  # one forward at a time; torch uses every core for each

    # -- scoring -------------------------------------------------------------------------------
    def start_ids(self, context: str) -> list[int]:
        """The context's ids (with BOS where the tokenizer adds one); never empty."""
        ids = self.tok(context).input_ids if context else []
        if not ids:
            start = self.tok.bos_token_id if self.tok.bos_token_id is not None else self.tok.eos_token_id
            ids = [start] if start is not None else []
        return ids

    def logprobs_at(self, ids: list[int], last: int = 0):
        """log-softmax over the vocabulary at the ``last`` positions of ``ids`` (0: every position),
        shape positions × vocab. The head runs only where asked: a context costs no logits."""
        import torch

        with self._lock, torch.inference_mode():
            x = torch.tensor([ids], device=self.device)
            return torch.log_softmax(self.model(x, logits_to_keep=last).logits[0].float(), dim=-1)

    def score(self, text: str, context: str) -> tuple[tuple[TokenLogprob, ...], int]:
        enc = self.tok(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc.input_ids, enc.offset_mapping
        if len(ids) >= self.window:
            raise LLMError(f"{self.model_id}: {len(ids)} tokens to score do not fit its window of {self.window}")
        ctx = self.start_ids(context)
        ctx = ctx[-(self.window - len(ids)):]
        rows = self.logprobs_at(ctx + ids, last=len(ids) + 1)[:len(ids)]  # the rows predicting each text token
        values = rows.gather(1, _col(ids, rows.device)).squeeze(1).tolist()
        toks = tuple(TokenLogprob(text[s:e], v, s) for (s, e), v in zip(offsets, values))
        return toks, len(ctx) + len(ids)

    def candidates(self, prompt: str, cands: tuple[str, ...]) -> tuple[dict[str, float], int]:
        ids = self.start_ids(prompt)[-self.window:]
        last = self.logprobs_at(ids, last=1)[-1]
        out = {}
        for c in cands:
            cid = self.tok(c, add_special_tokens=False).input_ids
            if not cid:
                raise LLMError(f"candidate {c!r} has no tokens")
            out[c] = float(last[cid[0]])
        return out, len(ids)

    def complete_scoring(self, req: Request) -> Completion:
        t0 = time.perf_counter()
        if req.kind == "score":
            toks, n = self.score(req.score, req.prompt or "")
            comp = Completion(logprobs=toks, prompt_tokens=n, finish_reason="scored")
        else:
            cands, n = self.candidates(req.prompt or "", req.candidates)
            comp = Completion(candidates=cands, prompt_tokens=n, finish_reason="scored")
        return _stamp(comp, self.model_id, t0)

    # -- generation (Hugging Face folders only) -------------------------------------------------
    def generate(self, req: Request) -> Completion:
        import torch

        t0 = time.perf_counter()
        if req.messages:
            if not getattr(self.tok, "chat_template", None):
                raise LLMError(f"{self.model_id} has no chat template; send a prompt instead of messages")
            ids = self.tok.apply_chat_template([{"role": m.role, "content": m.content} for m in req.messages],
                                               add_generation_prompt=True, tokenize=True, return_dict=False)
        else:
            ids = self.start_ids(req.prompt or "")
        kw: dict[str, Any] = {"max_new_tokens": req.max_tokens, "output_scores": True,
                              "return_dict_in_generate": True, "pad_token_id": self.tok.eos_token_id}
        if req.temperature > 0:
            kw.update(do_sample=True, temperature=req.temperature, top_p=req.top_p)
        else:
            kw.update(do_sample=False)
        with self._lock, torch.inference_mode():
            if req.seed is not None:
                torch.manual_seed(req.seed)
            out = self.model.generate(torch.tensor([ids], device=self.device), **kw)
        new = out.sequences[0, len(ids):].tolist()
        text = self.tok.decode(new, skip_special_tokens=True)
        finish = "stop" if new and new[-1] == self.tok.eos_token_id else "length"
        for s in req.stop:
            if s in text:
                text, finish = text[:text.index(s)], "stop"
        toks = ()
        if req.top_logprobs:
            rows = [torch.log_softmax(s[0].float(), -1) for s in out.scores]
            toks, pos = [], 0
            for tid, row in zip(new, rows):
                piece = self.tok.decode([tid])
                top = torch.topk(row, req.top_logprobs)
                alts = tuple((self.tok.decode([int(i)]), float(v)) for v, i in zip(top.values, top.indices))
                toks.append(TokenLogprob(piece, float(row[tid]), pos, alts))
                pos += len(piece)
            toks = tuple(toks)
        comp = Completion(text=text, logprobs=toks, prompt_tokens=len(ids), completion_tokens=len(new),
                          finish_reason=finish)
        return _stamp(comp, self.model_id, t0)


def _col(ids: list[int], device):
    import torch

    return torch.tensor(ids, device=device).unsqueeze(1)


def _stamp(comp: Completion, model_id: str, t0: float) -> Completion:
    from dataclasses import replace

    return replace(comp, model=model_id, scored_by=model_id if comp.finish_reason == "scored" else "",
                   latency_s=time.perf_counter() - t0)
