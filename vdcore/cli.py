"""The shared command line of both training packages (absl + ml_collections config files).

    python -m <package>.main --config configs/<model>/<name>.py[:stage1|stage2|both] --workdir DIR [--config.X V]

A config whose `stage` is 0 ("both") trains stage 1 into <workdir>/stage1 and then stage 2 from it into
<workdir>/stage2; a run resumes from its newest checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from vdcore.host_memory import keep_freed_memory

TrainFn = Callable[[ml_collections.ConfigDict, str], dict[str, Any]]


def define_flags(config_help: str) -> None:
    """--config (a config file, overridable field by field) and --workdir, both required."""
    config_flags.DEFINE_config_file("config", None, config_help, lock_config=True)
    flags.DEFINE_string("workdir", None, "Directory for checkpoints, pictures, metrics and logs.")
    flags.mark_flags_as_required(["config", "workdir"])
    flags.DEFINE_bool(
        "keep_freed_memory",
        True,
        "Keep freed host memory in the process (glibc mallopt; see vdcore/host_memory.py): XLA:CPU's per-step "
        "buffers then stop costing page faults (~25% of a VDSM step on 2 CPU cores). --nokeep_freed_memory "
        "leaves glibc's defaults.",
    )


def run(train_and_evaluate: TrainFn, train_both_stages: TrainFn, after: TrainFn | None = None) -> None:
    """Parse the flags and train the config's stage (or both); logs the run summary as JSON; then
    `after(config, workdir)` when given (the models' evaluation, switched by config.evaluation)."""

    def main(argv: list[str]) -> None:
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        if flags.FLAGS.keep_freed_memory:
            keep_freed_memory()  # before the first JAX computation: threads pick their malloc arena then
        config, workdir = flags.FLAGS.config, flags.FLAGS.workdir
        train = train_both_stages if config.stage == 0 else train_and_evaluate
        logging.info("finished: %s", json.dumps(train(config, workdir), default=str))
        if after is not None:
            after(config, workdir)

    app.run(main)
