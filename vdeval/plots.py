"""Report pictures: grouped accuracy bars and curves (per prediction step, over training time), written as PNG files.

Each function draws with matplotlib's non-interactive Agg backend, writes the PNG atomically (to
`out + ".tmp.png"`, then renamed onto `out`) so a reader never sees a half-written file, and returns `out`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig: plt.Figure, out: str) -> str:
    """Write `fig` to `out` as a PNG via a temporary file and os.replace; close the figure."""
    out = os.fspath(out)
    parent = os.path.dirname(out)
    if parent:
        os.makedirs(parent, exist_ok=True)
    tmp = out + ".tmp.png"
    try:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
        os.replace(tmp, out)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return out


def accuracy_bars(
    groups: Mapping[str, Mapping[str, tuple[float, float]]],
    out: str,
    title: str = "",
    chance: Mapping[str, float] | None = None,
) -> str:
    """Grouped bar chart of accuracies with std error bars.

    Args:
      groups: {group (e.g. generation mode): {bar (e.g. judge head): (mean, std)}}; a bar missing from a group
        leaves a gap.
      out: the PNG path to write.
      title: the figure title.
      chance: optional {bar: chance accuracy}, drawn as a dashed line in that bar's colour.

    Returns:
      `out`.
    """
    if not groups or not any(groups.values()):
        raise ValueError("groups must hold at least one (group, bar) entry; got none")
    bars: list[str] = []
    for inner in groups.values():
        bars.extend(name for name in inner if name not in bars)
    group_names = list(groups)
    width = 0.8 / len(bars)
    positions = np.arange(len(group_names), dtype=np.float64)
    colours = {name: f"C{i % 10}" for i, name in enumerate(bars)}

    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 + 0.5 * len(bars) * len(group_names)), 3.5))
    for i, name in enumerate(bars):
        means = [groups[g][name][0] if name in groups[g] else np.nan for g in group_names]
        stds = [groups[g][name][1] if name in groups[g] else np.nan for g in group_names]
        offsets = positions + (i - (len(bars) - 1) / 2.0) * width
        ax.bar(offsets, means, width, yerr=stds, capsize=3, label=name, color=colours[name])
    for name, level in (chance or {}).items():
        ax.axhline(level, linestyle="--", linewidth=1, color=colours.get(name, "grey"), label=f"chance ({name})")
    ax.set_xticks(positions)
    ax.set_xticklabels(group_names, rotation=20, ha="right")  # mode names run into each other level
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("accuracy")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, out)


def mean_std_curves(
    steps: Sequence[int],
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    out: str,
    ylabel: str,
    title: str = "",
    xlabel: str = "prediction step",
) -> str:
    """One line per series (its mean, dots at the points) with a shaded ± std band, against the x values.

    Args:
      steps: (T,) x values: prediction steps, or e.g. minutes of training of the accuracy-vs-time curve.
      series: {name: (mean, std)}, each a length-T sequence (e.g. PSNR per step over seeds).
      out: the PNG path to write.
      ylabel: the y-axis label (e.g. "PSNR (dB)").
      title: the figure title.
      xlabel: the x-axis label.

    Returns:
      `out`.
    """
    x = np.asarray(steps, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"steps must be a non-empty 1-D sequence; got shape {x.shape}")
    if not series:
        raise ValueError("series must hold at least one (name, (mean, std)) entry; got none")
    many = len(series) > 6  # then the legend goes beside the axes, where it hides no line
    fig, ax = plt.subplots(figsize=(8.0 if many else 5.0, 3.5 + 0.12 * max(0, len(series) - 20)))
    try:
        for i, (name, (mean, std)) in enumerate(series.items()):
            m = np.asarray(mean, dtype=np.float64)
            s = np.asarray(std, dtype=np.float64)
            if m.shape != x.shape or s.shape != x.shape:
                raise ValueError(
                    f"series[{name!r}] mean and std must have shape {x.shape} like steps; "
                    f"got shapes {m.shape} and {s.shape}"
                )
            colour = f"C{i % 10}"
            style = ("-", "--", ":", "-.")[(i // 10) % 4]  # colours repeat after 10: the line style tells them apart
            ax.plot(x, m, color=colour, linestyle=style, label=name, marker="." if x.size <= 50 else None)
            ax.fill_between(x, m - s, m + s, color=colour, alpha=0.25, linewidth=0)
    except ValueError:
        plt.close(fig)
        raise
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if many:
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    else:
        ax.legend(fontsize="small")
    return _save(fig, out)
