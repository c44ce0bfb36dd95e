"""Samplers over (epoch, index) keys: the shuffled, resumable train shard and the plain shard."""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import DistributedSampler, Sampler


class EpochSampler(Sampler):
    """One rank's shard of the indices for the current epoch, as (epoch, index) keys.

    Shuffling is torch's DistributedSampler (a generator seeded with seed + epoch), which also
    pads every rank to the same length. `set_epoch(epoch, skip)` drops the first `skip` keys, to
    continue an interrupted epoch exactly.
    """

    def __init__(self, n: int, *, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1):
        self.inner = DistributedSampler(
            range(n),
            num_replicas=world_size,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=False,
        )
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch whose order to produce, skipping its first `skip` samples."""
        self.epoch = int(epoch)
        self.skip = int(skip)
        self.inner.set_epoch(self.epoch)

    def indices(self) -> list[int]:
        """This rank's indices for the current epoch (after the skip)."""
        return list(self.inner)[self.skip :]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(self.epoch, i) for i in self.indices()])

    def __len__(self) -> int:
        return max(0, self.inner.num_samples - self.skip)


class ShardSampler(Sampler):
    """Indices rank, rank + world_size, ... (each item exactly once over all ranks), as (0, i)."""

    def __init__(self, n: int, rank: int = 0, world_size: int = 1):
        self.keys = [(0, i) for i in range(rank, n, world_size)]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)
