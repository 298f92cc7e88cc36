"""Accuracy over training time: the evaluation protocol run on every checkpoint a run kept.

    python -m vdsm_jax.evaluate --workdir RUN --judge J --curve [--seeds 0 --max_clips 100]
    python -m drnet_jax.evaluate --workdir RUN --judge J --curve [--seeds 0 --max_clips 100]

Each kept checkpoint of each stage (stage1/ then stage2/ of a 'both' run; keep them with the run config's
`keep_period`) is evaluated with the model's own evaluate command into <out>/step_<stage>_<step>/, and the
accuracy of every (generation mode, judge head) is read off against the training wall time at that checkpoint:
the `train_seconds` its meta carries (vdcore.loop: every sitting of a resumed run counted, compilation
included), with stage 2's time counted after the whole of stage 1's. A point already evaluated (its
metrics.json is there) is read back, not evaluated again, so an interrupted curve resumes.

Writes <out>/curve.json ({"points": [{stage, step, train_seconds, minutes, accuracy: {"mode/head": {mean,
std}}}, ...], "headline": "mode/head"}), <out>/curve.md (the same as a table) and <out>/curve.png.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from vdcore.checkpoint import CHECKPOINT_SUBDIR, Checkpointer
from vdcore.files import write_json, write_text
from vdeval import plots
from vdeval.evaluation import EvaluateFn


def stage_dirs(workdir: str) -> list[str]:
    """The stage folders of a run, in training order: stage1/ and stage2/ of a 'both' run, else workdir."""
    found = [os.path.join(workdir, s) for s in ("stage1", "stage2")]
    found = [d for d in found if os.path.isdir(os.path.join(d, CHECKPOINT_SUBDIR))]
    return found or [workdir]


def accuracies(metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{"mode/head": {"mean", "std"}} of every generation mode and judge head in an evaluation's metrics."""
    return {
        f"{mode}/{head}": {"mean": float(value["mean"]), "std": float(value["std"])}
        for mode, result in metrics["results"].items()
        for head, value in result.get("accuracy", {}).items()
    }


def accuracy_curve(
    evaluate: EvaluateFn,
    workdir: str,
    judge_dir: str,
    *,
    out: str | None = None,
    seeds: Sequence[int] = (0,),
    **evaluate_kwargs: Any,
) -> dict[str, Any]:
    """Evaluate every kept checkpoint of the run in `workdir` → {"curve", "paths"}; writes curve.json/.png.

    evaluate(stage_dir, judge_dir, step=, out=, seeds=, **evaluate_kwargs): a model's evaluate command.
    Raises ValueError when the run kept no checkpoint whose meta records its training time.
    """
    out = out or os.path.join(workdir, "evaluation", "curve")
    points: list[dict[str, Any]] = []
    offset = 0.0
    headline = None
    for stage_dir in stage_dirs(workdir):
        checkpoints = Checkpointer(os.path.join(stage_dir, CHECKPOINT_SUBDIR), max_to_keep=None, create=False)
        try:
            metas = {step: checkpoints.restore_meta(step) for step in checkpoints.all_steps()}
        finally:
            checkpoints.close()
        timed = {step: meta for step, meta in metas.items() if "train_seconds" in meta}
        for step, meta in tqdm(sorted(timed.items()), desc=f"curve {os.path.basename(stage_dir)}", unit="ckpt"):
            point_dir = os.path.join(out, f"step_{meta['stage']}_{step:08d}")
            metrics_path = os.path.join(point_dir, "metrics.json")
            if os.path.exists(metrics_path):
                with open(metrics_path) as f:
                    metrics = json.load(f)
            else:
                metrics = evaluate(stage_dir, judge_dir, step=step, out=point_dir, seeds=seeds, **evaluate_kwargs)[
                    "metrics"
                ]
            seconds = offset + float(meta["train_seconds"])
            points.append(
                {
                    "stage": int(meta["stage"]),
                    "step": int(step),
                    "train_seconds": seconds,
                    "minutes": seconds / 60.0,
                    "accuracy": accuracies(metrics),
                }
            )
            if metrics.get("headline"):
                headline = f"{metrics['headline']['mode']}/{metrics['headline']['head']}"
        if timed:
            offset += float(timed[max(timed)]["train_seconds"])
    if not points:
        raise ValueError(
            f"{workdir}: no checkpoint records its training time (train_seconds in its meta); train the run "
            "with this version and config.keep_period > 0 to keep checkpoints along the way"
        )
    curve = {"run": os.path.abspath(workdir), "judge": judge_dir, "seeds": list(seeds), "headline": headline}
    curve["points"] = points
    paths = {"curve": write_json(os.path.join(out, "curve.json"), curve)}
    paths["curve_table"] = write_text(os.path.join(out, "curve.md"), curve_table(curve) + "\n")
    paths["curve_plot"] = plot_curve(curve, os.path.join(out, "curve.png"))
    return {"curve": curve, "paths": paths}


def pair_names(points: Sequence[dict[str, Any]]) -> list[str]:
    """Every "mode/head" pair of the curve's points, in order of first appearance (stage 2 adds its modes)."""
    return list(dict.fromkeys(name for point in points for name in point["accuracy"]))


def plot_curve(curve: dict[str, Any], out: str) -> str:
    """Accuracy of each (mode, head) against minutes of training; a pair a stage does not have (e.g. DRNet's
    'predict' in stage 1) leaves a gap there."""
    points = curve["points"]
    names = pair_names(points)
    nan = {"mean": math.nan, "std": math.nan}
    series = {
        name: tuple([p["accuracy"].get(name, nan)[key] for p in points] for key in ("mean", "std")) for name in names
    }
    title = f"{os.path.basename(curve['run'])}: accuracy over training (headline {curve['headline']})"
    return plots.mean_std_curves(
        [p["minutes"] for p in points], series, out, "accuracy", title, xlabel="minutes of training"
    )


def curve_table(curve: dict[str, Any]) -> str:
    """The curve as a Markdown table: one row per checkpoint, accuracy (%) of each (mode, head) pair."""
    names = pair_names(curve["points"])
    lines = [
        f"Accuracy (%) over training of {curve['run']} (seeds {curve['seeds']}; headline {curve['headline']}):",
        "",
        "| stage | step | minutes | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for p in curve["points"]:
        cells = [f"{100 * p['accuracy'][n]['mean']:.2f}" if n in p["accuracy"] else "—" for n in names]
        lines.append(f"| {p['stage']} | {p['step']} | {p['minutes']:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
