"""Device-side normalisation of cached uint8 batches."""

from __future__ import annotations

import numpy as np
import torch

from maskforge.learn.transforms import to_model_input

MEAN, STD = [0.5, 0.45, 0.4], [0.25, 0.24, 0.23]


def test_to_model_input_normalises_and_sets_memory_format():
    batch = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 1, 1, 3).expand(2, 4, 4, 3)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    x = to_model_input(batch, mean, std)
    assert x.shape == (2, 3, 4, 4) and x.dtype == torch.float32 and x.is_contiguous()
    expected = [(0 - 0.5) / 0.25, (0.2 - 0.45) / 0.24, (1 - 0.4) / 0.23]
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), expected, rtol=1e-6)
    y = to_model_input(batch, mean, std, channels_last=True)
    assert y.is_contiguous(memory_format=torch.channels_last) and torch.equal(x, y)
