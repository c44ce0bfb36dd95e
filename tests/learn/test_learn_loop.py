"""One epoch: the weighted training loss, running totals, cross-entropy and validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskforge.learn.loop import (
    EpochTotals,
    make_loss,
    train_one_epoch,
    val_summary,
    validate_epoch,
)


def test_sample_weights_give_a_weighted_mean_loss():
    torch.manual_seed(0)
    head = torch.nn.Linear(4, 1)
    x = torch.randn(6, 4)
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    w = torch.tensor([1.0, 3.0, 0.0, 1.0, 2.0, 1.0])
    expected_per = torch.nn.functional.binary_cross_entropy_with_logits(
        head(x)[:, 0], y.float(), reduction="none"
    ).detach()
    optimizer = torch.optim.SGD(head.parameters(), lr=0.0)
    stats = train_one_epoch(head, [(x, y, w)], optimizer, torch.device("cpu"), loss_fn=make_loss(1))
    assert stats["loss"] == pytest.approx(float((expected_per * w).sum() / w.sum()), rel=1e-6)
    assert stats["images"] == 6 and stats["step"] == 1
    # Accuracy counts every image, whatever its weight.
    correct = ((head(x)[:, 0] > 0).long() == y).sum().item()
    assert stats["acc"] == pytest.approx(correct / 6)
    totals = EpochTotals.zeros(torch.device("cpu"))
    train_one_epoch(
        head, [(x, y, w)] * 2, optimizer, torch.device("cpu"), loss_fn=make_loss(1), totals=totals
    )
    assert totals.step == 2 and totals.sums[3].item() == 12


def test_cross_entropy_loss_and_predictions():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    per, predicted = make_loss(3)(logits, torch.tensor([0, 1]))
    np.testing.assert_allclose(
        per.numpy(), [np.log(1 + 2 * np.exp(-2)), np.log(2 + np.exp(3))], rtol=1e-6
    )
    assert predicted.tolist() == [0, 2]


def test_validation_loss_is_unweighted_and_sums_reduce_over_ranks():
    torch.manual_seed(0)
    head = torch.nn.Linear(4, 1)
    x = torch.randn(6, 4)
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    w = torch.tensor([1.0, 3.0, 0.0, 1.0, 2.0, 1.0])  # ignored by validation
    batches = [(x[:4], y[:4], w[:4]), (x[4:], y[4:], w[4:])]
    val = validate_epoch(head, batches, torch.device("cpu"), loss_fn=make_loss(1))
    with torch.no_grad():
        logits = head(x)[:, 0]
        expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, y.float())
        correct = ((logits > 0).long() == y).sum().item()
    assert val["loss"] == pytest.approx(float(expected), rel=1e-6)
    assert val["acc"] == pytest.approx(correct / 6) and val["count"] == 6
    assert not head.training  # evaluated in eval mode
    # Two ranks' sums added give the mean over both shards.
    both = val_summary(val["sums"] + val["sums"])
    assert both["count"] == 12 and both["loss"] == pytest.approx(val["loss"])
    assert np.isnan(val_summary(torch.zeros(3, dtype=torch.float64))["loss"])


def test_epoch_totals_survive_a_checkpoint():
    totals = EpochTotals(torch.tensor([3.0, 2.0, 5.0, 8.0], dtype=torch.float64), 4, 2.0)
    again = EpochTotals.from_dict(totals.as_dict(), torch.device("cpu"))
    assert (
        again.summary()
        == totals.summary()
        == {
            "loss": 1.5,
            "acc": 5 / 8,
            "images": 8,
            "seconds": 2.0,
            "images_per_s": 4.0,
            "step": 4,
        }
    )
