"""VDSM command line.

    python -m vdsm_jax.main --config configs/vdsm/quickstart.py --workdir runs/quickstart
    python -m vdsm_jax.main --config configs/vdsm/sprites.py:stage1 --workdir runs/sprites1 --config.bs 8
    python -m vdsm_jax.main --config configs/vdsm/sprites.py:stage2 --workdir runs/sprites2 \\
        --config.stage1_workdir runs/sprites1

A config whose `stage` is 0 ("both") trains stage 1 into <workdir>/stage1 and then
stage 2 into <workdir>/stage2. Runs resume from their newest checkpoint.
"""

from __future__ import annotations

import json

from absl import app, flags, logging
from ml_collections import config_flags

from vdsm_jax.train import train_and_evaluate, train_both_stages

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Config file: configs/vdsm/<name>.py[:stage1|stage2].", lock_config=True
)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, pictures, metrics and logs.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = FLAGS.config
    if config.stage == 0:
        summary = train_both_stages(config, FLAGS.workdir)
    else:
        summary = train_and_evaluate(config, FLAGS.workdir)
    logging.info("finished: %s", json.dumps(summary, default=str))


if __name__ == "__main__":
    app.run(main)
