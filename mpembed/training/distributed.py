"""Data-parallel training: launching under torchrun, rank bookkeeping and keeping the loss-owned
weights (classification heads) in sync across processes.

`SentenceTransformerTrainer` (through transformers' `Trainer` and accelerate) already does most of
DDP: it wraps the encoder in `DistributedDataParallel`, gives each rank a disjoint share of the
batches (accelerate's `BatchSamplerShard` deals out the batches of one identically-seeded
multi-dataset batch sampler round-robin: rank r gets batches r, r + N, ...), runs the dev evaluator
on rank 0 with the other ranks serving its encode calls, and writes checkpoints from rank 0. What it
does not do is all-reduce the gradients of weights that live in a loss rather than in the model
(`ClassificationHeadLoss.head`): without `SyncLossParameters` every rank would train its own head on
its own batches and rank 0 would save a head that saw half the data.
"""

from __future__ import annotations

import os
import subprocess
import sys

import torch
import torch.distributed as dist
import transformers
from torch import nn
from transformers import TrainerCallback


def world_size() -> int:
    """Processes in this run: the torchrun group once initialised, else what torchrun announced."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Only this process writes outputs (model, heads, metrics, dvclive)."""
    return rank() == 0


def under_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ


def torchrun_command(nproc: int, module: str) -> list[str]:
    """`python -m torch.distributed.run ... -m <module>`; `--standalone` picks a free local port."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        module,
    ]


def relaunch(nproc: int, module: str) -> int | None:
    """Run `module` again under torchrun with `nproc` processes and return its exit code.

    None (do nothing) when one process is asked for or this process already is a torchrun worker,
    so a stage can call it first thing and go on as usual when it returns None.
    """
    if nproc <= 1 or under_torchrun():
        return None
    print(f"relaunching under torchrun with {nproc} processes", flush=True)
    return subprocess.call(torchrun_command(nproc, module))


def local_device(device: str) -> str:
    """`cuda` -> this rank's GPU (`cuda:<LOCAL_RANK>`); `cpu` unchanged."""
    if device == "cuda" and under_torchrun():
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device


def barrier() -> None:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def shutdown() -> None:
    """Leave the process group cleanly (no 'destroy_process_group() was not called' warning)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def loss_owned_parameters(losses: dict[str, nn.Module], model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Trainable weights that belong to the losses and not to the (DDP-wrapped) model, in a fixed order."""
    in_model = {id(p) for p in model.parameters()}
    found, seen = [], set()
    for task in sorted(losses):
        for name, p in losses[task].named_parameters():
            if p.requires_grad and id(p) not in in_model and id(p) not in seen:
                seen.add(id(p))
                found.append((f"{task}.{name}", p))
    return found


class SyncLossParameters(TrainerCallback):
    """Averages the gradients of loss-owned weights over ranks before each optimizer step, as DDP does
    for the model's own weights, and starts them equal on every rank.

    A head that no rank used in a step keeps `grad=None` (the optimizer skips it, as it does in a
    single-process run); one used on some ranks gets the sum of their gradients divided by the world
    size, zeros counting for the ranks that did not use it (DDP's rule for unused parameters).
    """

    def __init__(self, losses: dict[str, nn.Module], model: nn.Module, seed: int):
        self.params = loss_owned_parameters(losses, model)
        self.seed = seed

    def on_train_begin(self, args, state, control, **kwargs):
        n = world_size()
        if n <= 1:
            return
        # Same seed everywhere keeps the batch sampler identical on every rank (accelerate then
        # shards it); the global RNG (dropout) gets a per-rank stream like accelerate's
        # `set_seed(device_specific=True)`. A resumed run restores per-rank RNG state after this.
        transformers.set_seed(self.seed + rank())
        for _, p in self.params:
            dist.broadcast(p.data, src=0)

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        n = world_size()
        if n <= 1 or not self.params:
            return
        device = self.params[0][1].device
        used = torch.tensor([p.grad is not None for _, p in self.params], dtype=torch.float32, device=device)
        flat = torch.cat(
            [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for _, p in self.params]
        )
        dist.all_reduce(used)
        dist.all_reduce(flat)
        flat /= n
        offset = 0
        for (_, p), count in zip(self.params, used.tolist(), strict=True):
            size = p.numel()
            p.grad = flat[offset : offset + size].view_as(p).clone() if count > 0 else None
            offset += size
