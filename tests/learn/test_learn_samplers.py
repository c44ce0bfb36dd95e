"""Samplers over (epoch, index) keys: seeded per epoch, resumable, equal shards per rank."""

from __future__ import annotations

from maskforge.learn.samplers import EpochSampler, ShardSampler


def test_epoch_sampler_is_seeded_per_epoch_and_resumable():
    sampler = EpochSampler(10, shuffle=True, seed=5)
    sampler.set_epoch(0)
    epoch0 = list(sampler)
    assert {e for e, _ in epoch0} == {0} and sorted(i for _, i in epoch0) == list(range(10))
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert [i for _, i in epoch1] != [i for _, i in epoch0] and {e for e, _ in epoch1} == {1}
    sampler.set_epoch(0)
    assert list(sampler) == epoch0
    sampler.set_epoch(0, skip=4)
    assert list(sampler) == epoch0[4:] and len(sampler) == 6


def test_epoch_sampler_shards_cover_everything_with_equal_lengths():
    shards = []
    for rank in range(3):
        sampler = EpochSampler(10, shuffle=True, seed=1, rank=rank, world_size=3)
        sampler.set_epoch(2)
        shards.append([i for _, i in sampler])
    assert [len(s) for s in shards] == [4, 4, 4]  # padded so every rank takes the same steps
    assert set().union(*shards) == set(range(10))
    assert ShardSampler(7, rank=1, world_size=3).keys == [(0, 1), (0, 4)]
    assert len(ShardSampler(2, rank=2, world_size=3)) == 0
