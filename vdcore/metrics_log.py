"""Run metrics in three forms: TensorBoard scalars, JSON lines, and a loss-curve PNG.

`<workdir>/tensorboard/` holds the event file (written by tensorboardX, which needs no TensorFlow),
`<workdir>/metrics.jsonl` one JSON object per logged step (machine-readable, for evaluation harnesses
and plots), and `<workdir>/loss_curves.png` is redrawn from the JSON lines on demand.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
from tensorboardX import SummaryWriter

from vdcore.files import atomic_write

FLUSH_SECONDS = 30  # how often the event file is flushed while a run goes on (and always on close)


class MetricsLogger:
    def __init__(self, workdir: str | os.PathLike):
        self.workdir = os.fspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.jsonl_path = os.path.join(self.workdir, "metrics.jsonl")
        self._writer = SummaryWriter(os.path.join(self.workdir, "tensorboard"), flush_secs=FLUSH_SECONDS)

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        values = {k: float(v) for k, v in scalars.items()}
        for tag, value in values.items():
            self._writer.add_scalar(tag, value, int(step))
        with open(self.jsonl_path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": int(step), **values}) + "\n")

    def plot(self, keys: Sequence[str], out: str | None = None, title: str = "") -> str | None:
        """Draw the given metrics against step, one panel each; returns the PNG path."""
        return plot_metrics(self.jsonl_path, keys, out or os.path.join(self.workdir, "loss_curves.png"), title)

    def close(self) -> None:
        self._writer.close()


def read_metrics(jsonl_path: str | os.PathLike) -> list[dict]:
    if not os.path.exists(jsonl_path):
        return []
    with open(jsonl_path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_metrics(jsonl_path: str | os.PathLike, keys: Sequence[str], out: str, title: str = "") -> str | None:
    rows = read_metrics(jsonl_path)
    keys = [k for k in keys if any(k in r for r in rows)]
    if not keys:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = min(3, len(keys))
    nrows = math.ceil(len(keys) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.5 * ncols, 3.2 * nrows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        points = np.array([(r["step"], r[key]) for r in rows if key in r and math.isfinite(r[key])])
        if len(points):
            ax.plot(points[:, 0], points[:, 1], lw=1.2)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)
    return out
