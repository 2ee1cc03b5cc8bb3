"""Weight-space ensembling with the base model (WiSE-FT, Wortsman et al., 2022).

The trained encoder is moved back part of the way to the base weights:
`w = (1 - keep_base) * w_trained + keep_base * w_base`. Interpolated weights keep most of the gain
on the tasks trained for and lose less of what the base model knew about everything else (here:
texts the training data does not cover). Only trainable tensors can differ from the base, so the
snapshot holds just those. Written by hand: it is two lines of tensor arithmetic, and the merging
libraries that offer it (e.g. mergekit) work on checkpoint files, not on a model in memory.
"""

from __future__ import annotations

import torch
from sentence_transformers import SentenceTransformer


def snapshot_trainable(model: SentenceTransformer) -> dict[str, torch.Tensor]:
    """Copies of the tensors training will change, taken before training."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


@torch.no_grad()
def blend_with_base(model: SentenceTransformer, base: dict[str, torch.Tensor], keep_base: float) -> int:
    """Interpolate the trained tensors towards `base` in place; returns how many tensors moved."""
    if not 0.0 <= keep_base <= 1.0:
        raise ValueError(f"keep_base must be in [0, 1], got {keep_base}")
    moved = 0
    for name, param in model.named_parameters():
        if name in base and keep_base > 0:
            param.mul_(1.0 - keep_base).add_(base[name].to(param.device), alpha=keep_base)
            moved += 1
    return moved
