"""torchrun integration: process group set-up, rank-aware helpers (all no-ops in one process)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: global rank, rank on its node, process counts."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        """True under torchrun with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the run folder, logs and checkpoints."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True when torchrun (or another launcher) set WORLD_SIZE > 1 in the environment."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device_type: str, timeout_s: float = 1800.0) -> DistContext:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA); one process: no-op.

    On CUDA each process uses the GPU of its LOCAL_RANK.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    backend = "nccl" if device_type == "cuda" else "gloo"
    if not dist.is_available():
        raise ValueError("This PyTorch build has no torch.distributed; run without torchrun.")
    if device_type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"LOCAL_RANK {local_rank} but this node has {torch.cuda.device_count()} GPU(s); "
                "use --nproc_per_node at most the GPU count."
            )
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {"timeout": timedelta(seconds=timeout_s)}
        if device_type == "cuda":
            kwargs["device_id"] = torch.device("cuda", local_rank)
        dist.init_process_group(backend, **kwargs)
    return DistContext(rank, local_rank, world_size, local_world_size, backend)


def close(ctx: DistContext) -> None:
    """Leave the process group (after the last collective)."""
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every rank."""
    if ctx.enabled:
        dist.barrier()


def broadcast_object(ctx: DistContext, obj: Any) -> Any:
    """Rank 0's value of a picklable object, on every rank."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(ctx: DistContext, obj: Any) -> list[Any]:
    """Every rank's value of a picklable object, in rank order, on every rank."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def all_reduce(ctx: DistContext, values: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """Element-wise sum (or max) of a tensor over ranks, in place; returned for chaining."""
    if ctx.enabled:
        dist.all_reduce(values, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return values


def broadcast_buffers(ctx: DistContext, model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

    DDP keeps parameters equal, but each rank updates running statistics from its own last
    batch; DDP would overwrite them from rank 0 at the next forward anyway. Doing it before
    validation and saving makes every rank evaluate and hold exactly the saved model.
    """
    if ctx.enabled:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def gather_strided(ctx: DistContext, local: torch.Tensor, n_total: int) -> torch.Tensor:
    """Rows i of rank r (items r, r + W, r + 2W, ...) reassembled in item order on every rank.

    local: (ceil-or-floor(n_total / W), ...) rows this rank computed for its strided shard.
    """
    if not ctx.enabled:
        return local
    w = ctx.world_size
    rows = -(-n_total // w)
    padded = local.new_zeros((rows, *local.shape[1:]))
    padded[: len(local)] = local
    parts = [torch.empty_like(padded) for _ in range(w)]
    dist.all_gather(parts, padded)
    out = local.new_empty((n_total, *local.shape[1:]))
    for r, part in enumerate(parts):
        count = len(range(r, n_total, w))
        out[r::w] = part[:count]
    return out


def weights_digest(weights: nn.Module | Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of a model's (or state_dict's) tensors: names, dtypes, shapes, bytes, in order."""
    if isinstance(weights, nn.Module):
        weights = (weights.module if hasattr(weights, "module") else weights).state_dict()
    digest = hashlib.sha256()
    for name, tensor in weights.items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
