"""VDSM command line.

    python -m vdsm_jax.main --config configs/vdsm/quickstart.py --workdir runs/quickstart
    python -m vdsm_jax.main --config configs/vdsm/sprites.py:stage1 --workdir runs/sprites1 --config.bs 8
    python -m vdsm_jax.main --config configs/vdsm/sprites.py:stage2 --workdir runs/sprites2 \\
        --config.stage1_workdir runs/sprites1

A config whose `stage` is 0 ("both") trains stage 1 into <workdir>/stage1 and then
stage 2 into <workdir>/stage2. Runs resume from their newest checkpoint.
"""

from __future__ import annotations

from vdcore import cli
from vdsm_jax.config_defaults import check_config
from vdsm_jax.evaluate import after_training
from vdsm_jax.train import train_and_evaluate, train_both_stages

cli.define_flags("Config file: configs/vdsm/<name>.py[:stage1|stage2|both].")

if __name__ == "__main__":
    cli.run(train_and_evaluate, train_both_stages, after_training, check_config)
