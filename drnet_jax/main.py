"""DRNet command line.

    python -m drnet_jax.main --config configs/drnet/quickstart.py --workdir runs/drnet_quickstart
    python -m drnet_jax.main --config configs/drnet/moving_mnist.py:stage1 --workdir runs/mnist1 --config.batch_size 8
    python -m drnet_jax.main --config configs/drnet/moving_mnist.py:stage2 --workdir runs/mnist2 \\
        --config.stage1_workdir runs/mnist1

A config whose `stage` is 0 ("both") trains stage 1 into <workdir>/stage1 and then
stage 2 into <workdir>/stage2. Runs resume from their newest checkpoint. Stage-2
values that differ from stage 1 (lr, beta1, niter, epoch_size) live in
`config.stage2` (e.g. --config.stage2.lr 1e-4).
"""

from __future__ import annotations

import json

from absl import app, flags, logging
from ml_collections import config_flags

from drnet_jax.train import train_and_evaluate, train_both_stages

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Config file: configs/drnet/<name>.py[:stage1|stage2|both].", lock_config=True
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
