"""Evaluation at the end of a training command: a judge trained once into the data directory, then the report.

A run config's `evaluation` block (`evaluation_config`) switches it on (the quickstarts do): when the last
stage is trained, the judge of the run's dataset is trained on its real clips into
<data_dir>/judges/<dataset>-<judge config>-T<seq_len>-s<steps> unless one is already there (its held-out
accuracy then comes from its judge.json), and the model's evaluate command scores the run and prints its
table. A judge given in `evaluation.judge` is used as it is.
"""

from __future__ import annotations

import json
import os
from typing import Any

import ml_collections
from absl import logging

from data_prep.input_pipeline import ensure_built
from vdcore.run_config import stage_config
from vdeval.curve import accuracy_curve, curve_table
from vdeval.evaluation import EvaluateFn
from vdeval.judge_train import default_config, train_and_evaluate
from vdeval.trained_judge import REPORT_FILE, accuracy_lines


def judge_workdir(
    data_dir: str,
    dataset: str,
    dataset_config: str,
    seq_len: int,
    steps: int,
    augment_strength: float = 0.0,
    centroid_crop: int = 0,
    convs_per_level: int = 1,
    pool_frame_logits: bool = False,
) -> str:
    """<data_dir>/judges/<dataset>-<config>-T<seq_len>-s<steps>[-a<augment strength>][-c<crop>][-v<convs per
    level>][-p (pooled frame logits)]: one judge per setting."""
    augment = f"-a{augment_strength:g}" if augment_strength else ""
    crop = f"-c{centroid_crop}" if centroid_crop else ""
    convs = f"-v{convs_per_level}" if convs_per_level != 1 else ""
    pool = "-p" if pool_frame_logits else ""
    name = f"{dataset}-{dataset_config or 'default'}-T{seq_len}-s{steps}{augment}{crop}{convs}{pool}"
    return os.path.join(data_dir, "judges", name)


def last_stage_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The flat config of the stage a training command ends with (stage 0, 'both', ends with stage 2)."""
    return stage_config(config, 1 if config.stage == 1 else 2)


def ensure_judge(config: ml_collections.ConfigDict, clip_len: int) -> str | None:
    """The judge's workdir for a run's `config`, training the judge when it is not there yet (None when a
    SIGTERM / SIGINT stopped that training; its checkpoint resumes it).

    clip_len: the length of the clips the run's last stage generates (the judge's seq_len unless
    config.evaluation.judge_seq_len says otherwise).
    """
    e = config.evaluation
    if e.judge:
        return e.judge
    dataset_config = e.judge_dataset_config or config.dataset_config
    seq_len = int(e.judge_seq_len) or int(clip_len)
    settings = {
        "augment_strength": float(e.judge_augment_strength),
        "centroid_crop": int(e.judge_centroid_crop),
        "convs_per_level": int(e.judge_convs_per_level),
        "pool_frame_logits": bool(e.judge_pool_frame_logits),
    }
    workdir = judge_workdir(config.data_dir, config.dataset, dataset_config, seq_len, int(e.judge_steps), **settings)
    report = os.path.join(workdir, REPORT_FILE)
    if os.path.isfile(report):
        with open(report) as f:
            logging.info("judge %s (trained before): %s", workdir, "; ".join(accuracy_lines(json.load(f))))
        return workdir
    ensure_built(config.dataset, config.data_dir, dataset_config or None, config.manual_dir or None)
    judge = default_config()
    judge.update(
        dataset=config.dataset,
        dataset_config=dataset_config,
        data_dir=config.data_dir,
        seq_len=seq_len,
        steps=int(e.judge_steps),
        **settings,
    )
    print(f"training the judge of {config.dataset}/{dataset_config} (T {seq_len}) into {workdir}")
    result = train_and_evaluate(judge, workdir)
    if result.get("stopped_by"):
        return None
    print("\n".join(accuracy_lines(result)))
    return workdir


def evaluate_trained_run(
    evaluate: EvaluateFn, config: ml_collections.ConfigDict, workdir: str, clip_len: int
) -> dict[str, Any] | None:
    """If config.evaluation.enabled: judge (trained once) + `evaluate(workdir, judge, ...)`; prints the table.

    config: the run's config as the command line gave it; clip_len as in `ensure_judge`.
    """
    e = config.evaluation
    if not e.enabled:
        return None
    judge = ensure_judge(config, clip_len)
    if judge is None:
        print("the judge was stopped by a signal with a checkpoint; rerun the command to resume it and evaluate")
        return None
    shared = {"data_dir": config.data_dir, "horizon": int(e.horizon)}
    result = evaluate(
        workdir,
        judge,
        seeds=[int(s) for s in e.seeds],
        max_clips=int(e.max_clips),
        max_probe_clips=int(e.max_probe_clips),
        **shared,
    )
    print(result["markdown"])
    print(f"wrote {', '.join(result['paths'].values())}")
    if e.curve:
        curve = accuracy_curve(
            evaluate,
            workdir,
            judge,
            seeds=[int(s) for s in e.curve_seeds],
            max_clips=int(e.curve_max_clips),
            max_probe_clips=int(e.curve_max_clips),
            **shared,
        )
        print(curve_table(curve["curve"]))
        print(f"wrote {', '.join(curve['paths'].values())}")
        result["curve"] = curve
    return result
