"""Judge command line: train a judge on a built dataset's real clips, or print its held-out accuracy.

    python -m vdeval.judge train --dataset sprites --data_dir data --workdir data/judges/sprites
    python -m vdeval.judge train --dataset moving_mnist --dataset_config quickstart --data_dir data --workdir J
    python -m vdeval.judge report --workdir data/judges/sprites

`train` resumes from the newest checkpoint in --workdir; any judge setting (vdeval.judge_train.default_config:
steps, batch_size, seq_len, lr, ...) is a flag of the same name. `report` prints the held-out accuracy per head
stored in <workdir>/judge.json (with --recompute: scored again on the test clips, from the checkpoint).
"""

from __future__ import annotations

import json
import os

from absl import app, flags

from data_prep.builders import DATASET_NAMES
from vdcore import cli
from vdcore.checkpoint import workdir_problem
from vdcore.host_memory import keep_freed_memory
from vdeval.judge_train import default_config, train_and_evaluate
from vdeval.trained_judge import REPORT_FILE, TrainedJudge, accuracy_lines, split_accuracy

COMMANDS = ("train", "report")
_DEFAULTS = default_config()

flags.DEFINE_string("workdir", None, "The judge's directory (checkpoints, judge.json, metrics.jsonl).")
flags.DEFINE_bool("recompute", False, "report: score the checkpoint on the test clips again instead of judge.json.")
for _name, _value in _DEFAULTS.items():
    _define = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float}.get(
        type(_value), flags.DEFINE_string
    )
    _define(_name, _value, f"judge setting (default {_value!r}); see vdeval/judge_train.py")
flags.mark_flags_as_required(["workdir"])


def _config():
    config = default_config()
    for name in config:
        config[name] = getattr(flags.FLAGS, name)
    return config


def _report(workdir: str, recompute: bool, data_dir_flag: flags.FlagHolder | None = None) -> dict:
    path = os.path.join(workdir, REPORT_FILE)
    if os.path.isfile(path) and not recompute:
        with open(path) as f:
            return json.load(f)
    judge = TrainedJudge.from_workdir(workdir)
    from vdeval.judge_data import judge_data

    data_dir = flags.FLAGS.data_dir if flags.FLAGS["data_dir"].present else judge.meta["data_dir"]
    data = judge_data(judge.dataset, data_dir, judge.meta["dataset_config"], judge.seq_len, judge.meta["seed"])
    report = split_accuracy(judge, data.test)
    report.update(split=data.test.split, dataset=data.dataset, dataset_config=data.dataset_config)
    return report


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[1] not in COMMANDS:
        raise app.UsageError(f"give one command, {' or '.join(COMMANDS)}; got {argv[1:]}")
    if argv[1] == "train" and not flags.FLAGS.dataset:
        raise app.UsageError(f"train needs --dataset, one of {', '.join(DATASET_NAMES)}")
    workdir = flags.FLAGS.workdir
    if problem := workdir_problem(workdir):
        cli.fail(f"--workdir {problem}")
    keep_freed_memory()
    if argv[1] == "train":
        report = train_and_evaluate(_config(), workdir)
        if report.get("stopped_by"):
            print(f"stopped by {report['stopped_by']} at step {report['step']} with a checkpoint; rerun to resume")
            return
    else:
        report = _report(workdir, flags.FLAGS.recompute)
    print("\n".join(accuracy_lines(report)))
    if "train_seconds" in report:
        print(f"  trained {report['steps']} steps on {report['train_clips']} clips in {report['train_seconds']:.0f} s")


if __name__ == "__main__":
    app.run(cli.report_input_errors(main))
