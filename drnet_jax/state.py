"""DRNet training state: creation, the stage-1 → stage-2 hand-over, and checkpoint locations.

Stage 1 trains two parameter sets with two optimisers, so its state is a pair of
vdcore TrainStates (`Stage1State`):
  main: params {'content_encoder', 'pose_encoder', 'decoder'}, frozen {'batch_stats': running
        averages of EC, EP, D}; its `rng` is the run's PRNG key (the discriminator's permutations);
  disc: params {'scene_discriminator'} (its `rng` is not used).
Stage 2 is one TrainState: params {'lstm'}, frozen {'params': EC, EP, D of stage 1,
'batch_stats': their running averages} — never updated.

A run's workdir holds `checkpoints/<step>/` (vdcore.checkpoint): the state and JSON meta
with the flat config, stage, epoch and the data iterator's state. Training (resume, the
stage-2 start) and the Python API (`DRNet.from_checkpoint`) read checkpoints through here.
"""

from __future__ import annotations

import os
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax

from drnet_jax.config_defaults import base_config
from drnet_jax.models import BN_NETWORKS, BatchStats, DRNetModules, Params
from vdcore import run_config
from vdcore.checkpoint import Checkpointer, open_run_checkpoints, read_run_meta
from vdcore.run_config import run_meta
from vdcore.train_state import TrainState

META_FORMAT = "drnet_jax.checkpoint/1"


def config_from_meta(meta: dict) -> ml_collections.ConfigDict:
    """The stored config of a run; settings added since it was written take their defaults."""
    return run_config.config_from_meta(meta, base_config())


MAIN_NETWORKS = BN_NETWORKS  # optimised by the stage-1 main update
DISCRIMINATOR = "scene_discriminator"
# Config fields that define EC, EP and D: a stage-2 config must agree with its stage-1 run on these.
STAGE1_NETWORK_FIELDS = (
    "content_model",
    "pose_model",
    "content_dim",
    "pose_dim",
    "channels",
    "image_width",
    "normalize",
)


@flax.struct.dataclass
class Stage1State:
    """The stage-1 pair of TrainStates (see the module docstring); `step` counts training steps."""

    main: TrainState
    disc: TrainState

    @property
    def step(self) -> jax.Array:
        return self.main.step

    @property
    def nonfinite_consecutive(self) -> jax.Array:
        """Training steps in a row with a skipped update (either optimiser)."""
        return jnp.maximum(self.main.nonfinite_consecutive, self.disc.nonfinite_consecutive)

    @property
    def nonfinite_total(self) -> jax.Array:
        """Skipped updates of both optimisers."""
        return self.main.nonfinite_total + self.disc.nonfinite_total


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """config.optimizer with config.lr, as torch's defaults: Adam(β=(beta1, 0.999), eps 1e-8),
    RMSprop(alpha 0.99, eps 1e-8 outside the square root), SGD (no momentum).

    (The originals pass `betas` to every optimiser class, so their rmsprop and sgd choices fail to build;
    here they take torch's own defaults and ignore beta1.)
    """
    if config.optimizer == "adam":
        return optax.adam(config.lr, b1=config.beta1, b2=0.999, eps=1e-8)
    if config.optimizer == "rmsprop":
        return optax.rmsprop(config.lr, decay=0.99, eps=1e-8, eps_in_sqrt=False)
    if config.optimizer == "sgd":
        return optax.sgd(config.lr)
    raise ValueError(f"config.optimizer must be adam, rmsprop or sgd, got {config.optimizer!r}")


def init_state(
    config: ml_collections.ConfigDict,
    modules: DRNetModules,
    rng: jax.Array,
    stage1: tuple[Params, BatchStats] | None = None,
) -> Stage1State | TrainState:
    """A fresh state for config.stage; stage 2 needs `stage1` = (params, batch_stats) of a stage-1 run."""
    init_rng, state_rng, disc_rng = jax.random.split(rng, 3)
    tx = make_optimizer(config)
    if config.stage == 1:
        params, batch_stats = jax.jit(modules.init_stage1)(init_rng)  # one compiled program, not op by op
        main = TrainState.create(
            {k: params[k] for k in MAIN_NETWORKS}, tx, state_rng, frozen={"batch_stats": batch_stats}
        )
        disc = TrainState.create({DISCRIMINATOR: params[DISCRIMINATOR]}, tx, disc_rng)
        return Stage1State(main=main, disc=disc)
    if config.stage != 2:
        raise ValueError(f"stage must be 1 or 2, got {config.stage!r}")
    if stage1 is None:
        raise ValueError("stage 2 needs the stage-1 networks (config.stage1_workdir)")
    params, batch_stats = stage1
    frozen = {"params": {k: params[k] for k in MAIN_NETWORKS}, "batch_stats": batch_stats}
    return TrainState.create({"lstm": jax.jit(modules.init_lstm)(init_rng)}, tx, state_rng, frozen=frozen)


def variables(state: Stage1State | TrainState) -> tuple[Params, BatchStats]:
    """(params of every network the state holds, BatchNorm running averages)."""
    if isinstance(state, Stage1State):
        return {**state.main.params, **state.disc.params}, state.main.frozen["batch_stats"]
    return {**state.frozen["params"], **state.params}, state.frozen["batch_stats"]


def open_checkpoints(path: str | os.PathLike) -> Checkpointer:
    return open_run_checkpoints(path, "DRNet")


def read_meta(path: str | os.PathLike, step: int | None = None) -> dict:
    return read_run_meta(path, META_FORMAT, "DRNet", step)


def abstract_state(config: ml_collections.ConfigDict, modules: DRNetModules) -> Any:
    """Shapes and dtypes of a state for config (no computation)."""

    def build():
        stage1 = modules.init_stage1(jax.random.key(0)) if config.stage == 2 else None
        return init_state(config, modules, jax.random.key(0), stage1)

    return jax.eval_shape(build)


def restore_state(
    config: ml_collections.ConfigDict,
    modules: DRNetModules,
    path: str | os.PathLike,
    step: int | None = None,
    sharding: jax.sharding.Sharding | None = None,
) -> tuple[Stage1State | TrainState, dict]:
    """Load a checkpoint written for config's stage and shapes (laid out as `sharding` when given, e.g.
    replicated over a training mesh); errors name mismatching keys."""
    meta = read_meta(path, step)
    if meta.get("stage") != config.stage:
        raise ValueError(
            f"{path}: checkpoint is from stage {meta.get('stage')}, the config asks for stage {config.stage}"
        )
    return open_checkpoints(path).restore(abstract_state(config, modules), step, sharding)


def load_stage1_variables(config: ml_collections.ConfigDict) -> tuple[Params, BatchStats]:
    """EC, EP, D variables of the stage-1 run config.stage1_workdir at epoch config.stage1_epoch (-1: newest).

    The checkpoint is read with the stage-1 run's own config (its optimiser state may differ); the fields that
    shape EC, EP and D must agree with `config`.
    """
    if not config.stage1_workdir:
        raise ValueError("stage 2 needs config.stage1_workdir: the workdir (or checkpoints folder) of a stage-1 run")
    stage1 = config_from_meta(read_meta(config.stage1_workdir))
    mismatched = [k for k in STAGE1_NETWORK_FIELDS if stage1[k] != config[k]]
    if mismatched:
        raise ValueError(
            f"{config.stage1_workdir}: the stage-1 run was trained with "
            + ", ".join(f"{k}={stage1[k]!r}" for k in mismatched)
            + "; this config has "
            + ", ".join(f"{k}={config[k]!r}" for k in mismatched)
        )
    step = None if config.stage1_epoch < 0 else config.stage1_epoch * stage1.epoch_size
    state, _ = restore_state(stage1, DRNetModules.from_config(stage1), config.stage1_workdir, step)
    params, batch_stats = variables(state)
    return {k: params[k] for k in MAIN_NETWORKS}, batch_stats


def state_meta(config: ml_collections.ConfigDict, step: int, data_state: Any) -> dict[str, Any]:
    return run_meta(META_FORMAT, config, step, config.epoch_size, data_state)
