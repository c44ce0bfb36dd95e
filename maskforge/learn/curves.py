"""Training curves (loss and accuracy per epoch) as a PNG, drawn off-screen."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from maskforge.core.imageio import atomic_write_bytes


def plot_curves(metrics: pd.DataFrame, path: Path) -> None:
    """Write curves.png from metrics.csv rows: train/val loss and accuracy against epoch."""
    # The object-oriented API renders with Agg and never touches pyplot's global state or a display.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=100, layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = metrics["epoch"]
    ax_loss.plot(epochs, metrics["train_loss"], "o-", label="train")
    ax_loss.plot(epochs, metrics["val_loss"], "o-", label="val")
    ax_acc.plot(epochs, metrics["train_acc"], "o-", label="train")
    ax_acc.plot(epochs, metrics["val_acc"], "o-", label="val")
    if "best" in metrics and metrics["best"].astype(bool).any():
        best = metrics[metrics["best"].astype(bool)].iloc[-1]
        ax_loss.axvline(
            best["epoch"], color="grey", linestyle=":", label=f"best (epoch {int(best['epoch'])})"
        )
    if (
        "phase" in metrics
        and (metrics["phase"] == "frozen").any()
        and (metrics["phase"] == "full").any()
    ):
        switch = metrics.loc[metrics["phase"] == "full", "epoch"].iloc[0] - 0.5
        for ax in (ax_loss, ax_acc):
            ax.axvspan(epochs.min() - 0.5, switch, color="0.92", label="frozen backbone")
    ax_loss.set(title="Loss", xlabel="epoch", ylabel="loss")
    ax_acc.set(title="Accuracy", xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(Path(path), buf.getvalue())
