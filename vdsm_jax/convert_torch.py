"""Convert an original PyTorch VDSM checkpoint into a vdsm_jax run that training resumes from.

    python -m vdsm_jax.convert_torch --config configs/vdsm/sprites.py:stage1 \\
        --torch_checkpoint 200_VDSM_EncDec.pth --workdir runs/sprites1
    python -m vdsm_jax.main --config configs/vdsm/sprites.py:stage1 --workdir runs/sprites1   # resumes
    python -m vdsm_jax.main --config configs/vdsm/sprites.py:stage2 --workdir runs/sprites2 \\
        --config.stage1_workdir runs/sprites1                                            # or starts stage 2

The config must describe the original run's shapes (z_dim, n_e_w, dynamics_dim, rnn_dim, rnn_layers, nc); its
stage must match the file's (a config of stage 0 takes the file's). The checkpoint is written at step
epoch × bs_per_epoch (the file's epoch). The optimiser state is fresh Adam state with the config's learning rate:
the torch optimiser state is not converted. The data iterator starts from the beginning of the training split.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from vdcore import cli
from vdcore.checkpoint import save_new_run
from vdcore.train_state import TrainState
from vdsm_jax.config_defaults import stage_config
from vdsm_jax.state import make_optimizer, split_params, state_meta
from vdsm_jax.torch_import import load_torch_checkpoint


def convert(config: ml_collections.ConfigDict, torch_checkpoint: str | os.PathLike, workdir: str) -> dict[str, Any]:
    """Write `torch_checkpoint` as the first checkpoint of the vdsm_jax run in `workdir`; returns a summary.

    Refuses a workdir that already holds checkpoints (training would resume from the newest one instead).
    """
    converted = load_torch_checkpoint(torch_checkpoint, config)
    config = stage_config(config, converted.stage)
    step = converted.epoch * config.bs_per_epoch
    total = config.epochs * config.bs_per_epoch
    if step >= total:
        logging.warning(
            "epoch %d is at or past the config's %d epochs: training will not continue", converted.epoch, total
        )
    # The same structure init_state builds (so restore_state's template matches), with the converted params.
    _, state_rng = jax.random.split(jax.random.key(config.seed))
    trained, frozen = split_params(jax.tree.map(jnp.asarray, converted.params), config.stage)
    state = TrainState.create(trained, make_optimizer(config), state_rng, frozen=frozen)
    state = state.replace(step=jnp.asarray(step, jnp.int32))
    save_new_run(workdir, step, jax.device_get(state), state_meta(config, step, None), config.keep_checkpoints)
    return {
        "torch_checkpoint": os.path.abspath(os.fspath(torch_checkpoint)),
        "workdir": os.path.abspath(workdir),
        "stage": config.stage,
        "epoch": converted.epoch,
        "step": step,
    }


def define_flags() -> None:
    """The CLI's flags (defined only when run as a program, so that importing `convert` defines none)."""
    config_flags.DEFINE_config_file(
        "config",
        None,
        "Config file: configs/vdsm/<name>.py[:stage1|stage2] with the original run's shapes.",
        lock_config=True,
    )
    flags.DEFINE_string("torch_checkpoint", None, "The original's {epoch}_VDSM_EncDec.pth or {epoch}_VDSM_seq.pth.")
    flags.DEFINE_string(
        "workdir",
        None,
        "New run directory: receives checkpoints/<epoch*bs_per_epoch>/ with the converted parameters and a FRESH "
        "optimiser state (the torch optimiser state is not converted).",
    )
    flags.mark_flags_as_required(["config", "torch_checkpoint", "workdir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    summary = convert(flags.FLAGS.config, flags.FLAGS.torch_checkpoint, flags.FLAGS.workdir)
    logging.info("converted: %s", json.dumps(summary))
    print(json.dumps(summary))


if __name__ == "__main__":
    define_flags()
    app.run(cli.report_input_errors(main), flags_parser=cli.parse_flags)
