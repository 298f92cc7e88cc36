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

from drnet_jax.config_defaults import check_config
from drnet_jax.evaluate import after_training
from drnet_jax.train import train_and_evaluate, train_both_stages
from vdcore import cli

cli.define_flags("Config file: configs/drnet/<name>.py[:stage1|stage2|both].")

if __name__ == "__main__":
    cli.run(train_and_evaluate, train_both_stages, after_training, check_config)
