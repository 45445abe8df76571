"""ChunkScore (QChunker, Zhao et al. 2026, §1.4 of the spec): how good one partition of a document
is, with no questions — λ·logical independence + (1−λ)·semantic dispersion.

- Logical independence, per boundary: LI(c_i, c_{i−1}) = PPL(c_i | c_{i−1}) / PPL(c_i), averaged
  over the K−1 boundaries. A clean boundary leaves the previous chunk no help in predicting the
  next (LI near 1). ``li_mode="nll"`` takes the ratio of mean token NLLs instead (MoC's code).
  PPL(c_i) conditions on the model's start token (the scorer's empty context); MoC's code uses a
  single space there. With K = 1 there is no boundary: LI := 1.0 and the result says so.
- Semantic dispersion: (1/K)·log det(Σ + αI), Σ = Zᵀ J_d Z with J_d centring each chunk vector
  across its own d features (not across chunks: the spec's trap), α = 1e-3, via slogdet.

The LM scores through the LLM layer (cached, concurrent); the vectors come from the embedder.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from chunkctl.llm import Request

LAMBDA, ALPHA = 0.3, 1e-3


@dataclass(frozen=True)
class ChunkScore:
    score: float
    li: float
    sd: float
    single_chunk: bool  # K = 1: LI is defined as 1.0


def semantic_dispersion(vectors: np.ndarray, alpha: float = ALPHA) -> float:
    """(1/K)·log det(Σ + αI) for a (K, d) matrix of chunk vectors."""
    z = np.asarray(vectors, dtype=np.float64)
    zc = z - z.mean(axis=1, keepdims=True)  # J_d: centre each vector over its own features
    sign, logdet = np.linalg.slogdet(zc @ zc.T + alpha * np.eye(len(z)))
    if sign <= 0:
        raise ValueError("Σ + αI is not positive definite")  # cannot happen for α > 0
    return float(logdet / len(z))


def mean_nll(comp) -> float:
    vals = [t.logprob for t in comp.logprobs if t.logprob is not None]
    return -sum(vals) / len(vals) if vals else 0.0


def logical_independence(chunks: Sequence[str], llm, li_mode: str = "ppl") -> float:
    """Mean over boundaries of PPL(c_i | c_{i−1}) / PPL(c_i) (or the NLL ratio)."""
    if li_mode not in ("ppl", "nll"):
        raise ValueError("li_mode must be ppl or nll")
    if len(chunks) < 2:
        return 1.0
    reqs = [Request(prompt=chunks[i - 1], score=chunks[i]) for i in range(1, len(chunks))]
    reqs += [Request(prompt="", score=chunks[i]) for i in range(1, len(chunks))]
    outs = llm.map(reqs)
    n = len(chunks) - 1
    cond, alone = [mean_nll(c) for c in outs[:n]], [mean_nll(c) for c in outs[n:]]
    if li_mode == "nll":
        ratios = [c / a if a else 1.0 for c, a in zip(cond, alone)]
    else:
        ratios = [math.exp(c - a) for c, a in zip(cond, alone)]
    return float(np.mean(ratios))


def chunk_score(chunks: Sequence[str], llm, embedder, lam: float = LAMBDA, alpha: float = ALPHA,
                li_mode: str = "ppl") -> ChunkScore:
    if not chunks:
        raise ValueError("ChunkScore needs at least one chunk")
    li = logical_independence(chunks, llm, li_mode)
    sd = semantic_dispersion(embedder.embed(list(chunks)), alpha)
    return ChunkScore(lam * li + (1 - lam) * sd, li, sd, len(chunks) == 1)
