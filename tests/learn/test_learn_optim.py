"""The optimiser and the per-epoch learning-rate schedule."""

from __future__ import annotations

import pytest
import torch

from maskforge.learn.optim import build_optimizer, build_scheduler


def _params() -> list[torch.nn.Parameter]:
    return list(torch.nn.Linear(2, 1).parameters())


@pytest.mark.parametrize(
    "name, kind",
    [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)],
)
def test_optimizers(name, kind):
    optimizer = build_optimizer(name, _params(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    assert type(optimizer) is kind
    group = optimizer.param_groups[0]
    assert group["lr"] == 0.1 and group["weight_decay"] == 1e-4
    assert group.get("momentum", 0.9) == 0.9  # SGD's; Adam and AdamW have none


def test_schedules_step_per_epoch():
    rates = {}
    for name in ("cosine", "step"):
        optimizer = build_optimizer("sgd", _params(), lr=1.0, momentum=0, weight_decay=0)
        scheduler = build_scheduler(name, optimizer, epochs=6)
        rates[name] = []
        for _ in range(6):
            rates[name].append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
    assert rates["step"] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    assert rates["cosine"][0] == 1 and rates["cosine"][3] == pytest.approx(0.5)
    optimizer = build_optimizer("sgd", _params(), lr=1.0, momentum=0, weight_decay=0)
    assert build_scheduler("none", optimizer, epochs=6) is None


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="Invalid optimizer 'lamb'. Only sgd, adam, adamw"):
        build_optimizer("lamb", _params(), lr=0.1, momentum=0, weight_decay=0)
    optimizer = build_optimizer("sgd", _params(), lr=0.1, momentum=0, weight_decay=0)
    with pytest.raises(ValueError, match="Invalid scheduler 'linear'. Only cosine, step, none"):
        build_scheduler("linear", optimizer, epochs=3)
