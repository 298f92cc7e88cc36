"""Convert a DRNet authors' PyTorch checkpoint (drnet-py) into a drnet_jax run that training resumes from.

    python -m drnet_jax.convert_torch --config configs/drnet/kth.py:stage1 \\
        --torch_checkpoint drnet-py/logs/.../model.pth --workdir runs/kth_from_torch1 --epoch 200
    python -m drnet_jax.main --config configs/drnet/kth.py:stage1 --workdir runs/kth_from_torch1     # resumes
    python -m drnet_jax.main --config configs/drnet/kth.py:stage2 --workdir runs/kth2 \\
        --config.stage1_workdir runs/kth_from_torch1                                                  # stage 2

The config must describe the file's networks (content_model, pose_model, image_width, channels,
content_dim, pose_dim, sd_nf; rnn_size and rnn_layers for a stage-2 file); every mismatch is reported in
one error, naming the keys with expected vs found shapes. A stage-1 file (netEC, netEP, netD[, netC])
needs a stage-1 config, a stage-2 file (with 'lstm') a stage-2 one; a "both" config takes the file's stage.
An authors' stage-2 file holds the LSTM only: its EC, EP and D come from the stage-1 model.pth it was trained
from (``opt.model_path``, or ``--stage1_torch_checkpoint``).

The checkpoint is written at step ``epoch * epoch_size`` (the config's epoch_size for that stage), with
the config and stage in its meta, through drnet_jax.state like every run's checkpoint. What is NOT carried
over: the optimiser state (fresh Adam/RMSprop/SGD state: the authors' files do not hold theirs), the data
iterator's position (it starts afresh), and — when the file has no 'netC' — the scene discriminator, which
then starts from a fresh initialisation (config.seed). Everything else (EC, EP, D and their BatchNorm
running averages, the LSTM) is the file's exactly.
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

from drnet_jax.config_defaults import check_config
from drnet_jax.models import DRNetModules
from drnet_jax.state import DISCRIMINATOR, MAIN_NETWORKS, Stage1State, abstract_state, make_optimizer, state_meta
from drnet_jax.torch_import import TorchDRNetVariables, load_torch_checkpoint
from vdcore import cli
from vdcore.checkpoint import save_new_run
from vdcore.train_state import TrainState

FLAGS = flags.FLAGS


def _train_state(params: Any, frozen: Any, rng: jax.Array, step: int, config: ml_collections.ConfigDict) -> TrainState:
    """A TrainState holding ``params`` with a fresh optimiser state, the step counter at ``step``."""
    params = jax.tree.map(jnp.asarray, params)
    state = TrainState.create(params, make_optimizer(config), rng, frozen=jax.tree.map(jnp.asarray, frozen))
    return state.replace(step=jnp.asarray(step, jnp.int32))


def converted_state(
    config: ml_collections.ConfigDict, modules: DRNetModules, loaded: TorchDRNetVariables, step: int
) -> Stage1State | TrainState:
    """The training state of config.stage built from converted variables (no network is initialised or run, except
    a scene discriminator the file lacks). Its structure and shapes are checked against the state that training
    restores (drnet_jax.state.abstract_state). The PRNG keys come from config.seed, split as init_state does."""
    init_rng, state_rng, disc_rng = jax.random.split(jax.random.key(config.seed), 3)
    main_params = {k: loaded.params[k] for k in MAIN_NETWORKS}
    if config.stage == 1:
        main = _train_state(main_params, {"batch_stats": loaded.batch_stats}, state_rng, step, config)
        if DISCRIMINATOR in loaded.params:
            disc_params = loaded.params[DISCRIMINATOR]
        else:
            poses = jnp.zeros((2, config.pose_dim))
            disc_params = modules.scene_discriminator.init(init_rng, poses, poses)["params"]
        state = Stage1State(main=main, disc=_train_state({DISCRIMINATOR: disc_params}, None, disc_rng, step, config))
    else:
        frozen = {"params": main_params, "batch_stats": loaded.batch_stats}
        state = _train_state({"lstm": loaded.params["lstm"]}, frozen, state_rng, step, config)
    expected = abstract_state(config, modules)
    shapes = lambda tree: jax.tree.map(lambda x: (tuple(x.shape), jnp.dtype(x.dtype)), tree)
    if shapes(state) != shapes(expected):
        raise RuntimeError("converted DRNet state does not match drnet_jax.state.abstract_state (a converter bug)")
    return state


def _discriminator_source(stage: int, loaded: TorchDRNetVariables) -> str:
    if stage == 2:
        return "not part of a stage-2 state"
    return "converted" if DISCRIMINATOR in loaded.params else "fresh init (the file has no netC)"


def convert(
    config: ml_collections.ConfigDict,
    torch_checkpoint: str,
    workdir: str,
    epoch: int = 0,
    stage1_checkpoint: str | None = None,
) -> dict[str, Any]:
    """Write ``<workdir>/checkpoints/<epoch * epoch_size>`` from an authors' .pth file; returns a summary dict.

    ``stage1_checkpoint``: the stage-1 model.pth of an LSTM-only stage-2 file, where it is not found by itself.
    Refuses a workdir that already holds checkpoints (it would mix two runs).
    """
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
    loaded = load_torch_checkpoint(torch_checkpoint, config, stage1_checkpoint)
    config = loaded.config
    check_config(config)
    step = epoch * config.epoch_size
    modules = DRNetModules.from_config(config)
    if config.stage == 1 and DISCRIMINATOR not in loaded.params:
        logging.warning("%s has no 'netC': the scene discriminator starts from a fresh init", torch_checkpoint)
    state = converted_state(config, modules, loaded, step)
    save_new_run(workdir, step, jax.device_get(state), state_meta(config, step, None), config.keep_checkpoints)
    return {
        "torch_checkpoint": os.path.abspath(torch_checkpoint),
        "workdir": os.path.abspath(workdir),
        "stage": config.stage,
        "step": step,
        "epoch": epoch,
        "scene_discriminator": _discriminator_source(config.stage, loaded),
        "optimizer_state": "fresh",
    }


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    summary = convert(FLAGS.config, FLAGS.torch_checkpoint, FLAGS.workdir, FLAGS.epoch, FLAGS.stage1_torch_checkpoint)
    logging.info("converted: %s", json.dumps(summary))
    print(json.dumps(summary))


def define_flags() -> None:
    """The CLI's flags (defined only when run as a program, so that importing `convert` defines none)."""
    config_flags.DEFINE_config_file(
        "config",
        None,
        "Config file describing the file's networks: configs/drnet/<name>.py[:stage1|stage2|both].",
        lock_config=True,
    )
    flags.DEFINE_string("torch_checkpoint", None, "The authors' torch.save file (.pth): stage 1 or stage 2.")
    flags.DEFINE_string(
        "stage1_torch_checkpoint",
        None,
        "For an LSTM-only stage-2 file (what train_lstm.py writes: {'lstm', 'opt'}): the stage-1 model.pth it was "
        "trained from, where it is not at opt.model_path or three folders up from the LSTM file.",
    )
    flags.DEFINE_string("workdir", None, "New run directory; the checkpoint goes to <workdir>/checkpoints/<step>.")
    flags.DEFINE_integer(
        "epoch",
        0,
        "Epochs the file was trained for: the checkpoint's step is epoch * epoch_size, where training resumes. "
        "The optimiser state is NOT converted: training resumes with a fresh optimiser state (and a fresh data "
        "iterator; a fresh scene discriminator when the file has no netC).",
        lower_bound=0,
    )
    flags.mark_flags_as_required(["config", "torch_checkpoint", "workdir"])


if __name__ == "__main__":
    define_flags()
    app.run(cli.report_input_errors(main), flags_parser=cli.parse_flags)
