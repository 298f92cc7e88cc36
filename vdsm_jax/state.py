"""VDSM training state: creation, the stage-1 → stage-2 hand-over, and checkpoint locations.

A run's workdir holds `checkpoints/<step>/` (vdcore.checkpoint): the TrainState
(trained params, optimiser state, frozen params, step, RNG key data, non-finite
counters) and JSON meta with the run's flat config, its stage, epoch and the data
iterator's state. Both training (resume, stage-2 start) and the Python API
(`VDSM.from_checkpoint`) read checkpoints through this module.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from vdcore import run_config
from vdcore.checkpoint import Checkpointer, open_run_checkpoints, read_run_meta
from vdcore.run_config import run_meta
from vdcore.train_state import TrainState
from vdsm_jax.config_defaults import base_config
from vdsm_jax.models import FROZEN_IN_STAGE2, Params, VDSMModules

META_FORMAT = "vdsm_jax.checkpoint/1"


def config_from_meta(meta: dict) -> ml_collections.ConfigDict:
    """The stored config of a run; settings added since it was written take their defaults."""
    return run_config.config_from_meta(meta, base_config())


def learning_rate(config: ml_collections.ConfigDict) -> float:
    return config.lr_VDSMEncDec if config.stage == 1 else config.lr_VDSMSeq


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Adam with the stage's learning rate as an injectable hyper-parameter (so `lr_resume` can replace it),
    its updates scaled by `lr_drop_factor` once per epoch of `lr_drop_epochs` (not the original's: it keeps one
    rate; short runs need the drop, e.g. configs/vdsm/sprites_fast.py). The drop follows the optimiser's own step
    count, which the checkpoint holds, so a resumed run drops at the same steps."""
    adam = optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate(config))
    if not config.lr_drop_epochs:
        return adam
    steps = {int(epoch) * int(config.bs_per_epoch): float(config.lr_drop_factor) for epoch in config.lr_drop_epochs}
    return optax.chain(adam, optax.scale_by_schedule(optax.piecewise_constant_schedule(1.0, steps)))


def with_learning_rate(opt_state: Any, lr: float) -> Any:
    """`opt_state` of `make_optimizer` with its base learning rate replaced by `lr` (lr drops still apply)."""
    if hasattr(opt_state, "hyperparams"):
        hyperparams = dict(opt_state.hyperparams, learning_rate=jnp.asarray(lr, jnp.float32))
        return opt_state._replace(hyperparams=hyperparams)
    return (with_learning_rate(opt_state[0], lr), *opt_state[1:])


def split_params(params: Params, stage: int) -> tuple[Params, Params]:
    """(trained, frozen): stage 2 freezes the image encoder and decoder, stage 1 trains everything."""
    if stage == 1:
        return dict(params), {}
    trained = {k: v for k, v in params.items() if k not in FROZEN_IN_STAGE2}
    frozen = {k: v for k, v in params.items() if k in FROZEN_IN_STAGE2}
    return trained, frozen


def all_params(state: TrainState) -> Params:
    return {**state.frozen, **state.params}


def init_state(
    config: ml_collections.ConfigDict, modules: VDSMModules, rng: jax.Array, stage1_params: Params | None = None
) -> TrainState:
    """A fresh state for `config.stage`; in stage 2, `stage1_params` supply enc, dec and id_layers."""
    init_rng, state_rng = jax.random.split(rng)
    params = modules.init(init_rng, config.stage, config.image_size)
    if config.stage == 2:
        if stage1_params is None:
            raise ValueError("stage 2 needs the stage-1 parameters (config.stage1_workdir)")
        params.update({k: stage1_params[k] for k in ("enc", "dec", "id_layers")})
    trained, frozen = split_params(params, config.stage)
    return TrainState.create(trained, make_optimizer(config), state_rng, frozen=frozen)


def open_checkpoints(path: str | os.PathLike) -> Checkpointer:
    return open_run_checkpoints(path, "VDSM")


def read_meta(path: str | os.PathLike, step: int | None = None) -> dict:
    return read_run_meta(path, META_FORMAT, "VDSM", step)


def restore_state(
    config: ml_collections.ConfigDict,
    modules: VDSMModules,
    path: str | os.PathLike,
    step: int | None = None,
    sharding: jax.sharding.Sharding | None = None,
) -> tuple[TrainState, dict]:
    """Load a checkpoint written for `config`'s stage and shapes (laid out as `sharding` when given, e.g.
    replicated over a training mesh); errors name mismatching keys."""
    template = jax.eval_shape(lambda: init_state(config, modules, jax.random.key(0), _abstract_stage1(modules, config)))
    state, meta = open_checkpoints(path).restore(template, step, sharding)
    if meta.get("stage") != config.stage:
        raise ValueError(
            f"{path}: checkpoint is from stage {meta.get('stage')}, the config asks for stage {config.stage}"
        )
    return state, meta


def _abstract_stage1(modules: VDSMModules, config: ml_collections.ConfigDict) -> Params | None:
    return modules.init(jax.random.key(0), 1, config.image_size) if config.stage == 2 else None


def load_stage1_params(config: ml_collections.ConfigDict, modules: VDSMModules) -> Params:
    """The stage-1 networks named by config.stage1_workdir and config.pretrained_model_VDSMEncDec (an epoch, -1 newest)."""
    if not config.stage1_workdir:
        raise ValueError("stage 2 needs config.stage1_workdir: the workdir (or checkpoints folder) of a stage-1 run")
    # The stage-1 run's own config shaped its checkpoint (its optimiser state follows its own lr drops); the
    # networks are this config's modules, so their shapes must agree.
    stage1 = config_from_meta(read_meta(config.stage1_workdir))
    step = None
    if config.pretrained_model_VDSMEncDec >= 0:
        step = config.pretrained_model_VDSMEncDec * stage1.bs_per_epoch
    state, _ = restore_state(stage1, modules, config.stage1_workdir, step)
    return all_params(state)


def state_meta(config: ml_collections.ConfigDict, step: int, data_state: Any) -> dict[str, Any]:
    return run_meta(META_FORMAT, config, step, config.bs_per_epoch, data_state)
