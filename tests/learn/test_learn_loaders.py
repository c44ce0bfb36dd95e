"""Training inputs: stats.json checks, loaders and their worker count."""

from __future__ import annotations

import json

import pytest
import torch

from maskforge.learn.loaders import default_workers, make_loader, read_stats
from maskforge.learn.samplers import ShardSampler


def test_default_workers():
    assert 0 <= default_workers("cpu") <= 2
    assert default_workers("cuda") >= 1
    assert default_workers("cuda", local_world_size=10_000) == 1


def test_read_stats(tmp_path):
    path = tmp_path / "stats.json"
    assert read_stats(path, "ab" * 32, ["unmasked", "masked"]) == (None, None, None)
    path.write_text(json.dumps({"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.2], "size": 64}))
    assert read_stats(path, "ab" * 32, ["unmasked", "masked"]) == (
        [0.5, 0.4, 0.3],
        [0.2, 0.2, 0.2],
        64,
    )
    path.write_text(json.dumps({"mean": [0.5, 0.4], "std": [0.2, 0.2]}))
    with pytest.raises(ValueError, match="needs 3 mean values and 3 positive std values"):
        read_stats(path, "ab" * 32, ["unmasked", "masked"])
    path.write_text("{")
    with pytest.raises(ValueError, match="is not valid stats"):
        read_stats(path, "ab" * 32, ["unmasked", "masked"])


def test_make_loader_batches_the_sampler_keys_in_order():
    class Keys(torch.utils.data.Dataset):
        def __getitem__(self, key):
            return torch.tensor(key[1])

    loader = make_loader(
        Keys(), ShardSampler(7, rank=1, world_size=2), 2, drop_last=False, workers=0
    )
    assert [b.tolist() for b in loader] == [[1, 3], [5]]
    assert not loader.persistent_workers


def test_training_data_names_a_fifo_for_what_it_is(tmp_path, unmasked_dir, fifo):
    # A FIFO in a manifest is there but no image: said so (from stat, unopened), not "missing".
    import shutil

    import pandas as pd

    from maskforge.learn.loaders import load_training_data

    photos = sorted(unmasked_dir.glob("*.jpg"))[:4]
    for p in photos:
        shutil.copy(p, tmp_path / p.name)
    fifo(tmp_path / "cam.jpg")
    names = [p.name for p in photos]
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    train = pd.DataFrame({"path": [f"../{n}" for n in [*names[:2], "cam.jpg"]]})
    train["label"] = ["masked", "unmasked", "masked"]
    train.to_csv(manifests / "train.csv", index=False)
    val = pd.DataFrame({"path": [f"../{n}" for n in names[2:]], "label": ["masked", "unmasked"]})
    val.to_csv(manifests / "val.csv", index=False)
    with pytest.raises(
        ValueError,
        match=r"1 image\(s\) in .*train\.csv cannot be read, e\.g\. .*"
        r"cam\.jpg: not a regular file \(a FIFO\)",
    ):
        load_training_data(manifests)
    (tmp_path / "cam.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 image\(s\) listed in .*train\.csv are missing"):
        load_training_data(manifests)
