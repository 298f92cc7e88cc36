"""VDSM training: the pure jitted train step and `train_and_evaluate(config, workdir)`.

The train step is a pure function of (state, videos): it splits the state's PRNG
key, reads the four schedule values at the state's step, differentiates NumPyro's
Trace_ELBO with respect to the trained parameters, and applies Adam unless the
loss or a gradient is non-finite (then the update is skipped and counted).
Everything else (mesh, data, checkpoints, metrics, stop rules, pictures' cadence)
is vdcore.loop's; this module hands it the step, the state and the pictures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import optax

from data_prep.input_pipeline import Batches
from vdcore import loop, training
from vdcore.run_config import stage_config
from vdcore.train_state import TrainState, apply_gradients_if_finite
from vdsm_jax import objectives, outputs
from vdsm_jax.config_defaults import check_config
from vdsm_jax.data import picture_sampler, train_sampler
from vdsm_jax.models import VDSMModules
from vdsm_jax.schedules import VDSMSchedules, make_schedules, values_at
from vdsm_jax.state import (
    init_state,
    load_stage1_params,
    make_optimizer,
    restore_state,
    state_meta,
    with_learning_rate,
)

SCHEDULE_NAMES = ("temp_id", "anneal_id", "anneal_t", "anneal_dynamics")


def make_train_step(
    modules: VDSMModules, stage: int, tx: optax.GradientTransformation, schedules: VDSMSchedules, num_particles: int = 1
) -> Callable[[TrainState, jax.Array], tuple[TrainState, dict[str, jax.Array]]]:
    """(state, videos (B, T, H, W, C) in [0, 1]) → (new state, metrics); pure, for jax.jit."""

    def loss_fn(trained, frozen, videos, anneal, rng):
        params = {**frozen, **trained}
        return objectives.elbo_loss(modules, stage, params, videos, anneal, rng, num_particles)

    def train_step(state: TrainState, videos: jax.Array):
        next_key, loss_key = jax.random.split(state.key())
        anneal = values_at(schedules, state.step)
        loss, grads = jax.value_and_grad(loss_fn)(state.params, state.frozen, videos, anneal, loss_key)
        new_state, finite = apply_gradients_if_finite(state, grads, loss, tx, rng=jax.random.key_data(next_key))
        metrics = {"loss": loss, "finite": finite, **anneal}
        return new_state, metrics

    return train_step


def make_terms_fn(modules: VDSMModules, stage: int, schedules: VDSMSchedules):
    """(state, videos) → the ELBO's per-site terms with the step's own noise (for logging)."""

    def terms(state: TrainState, videos: jax.Array) -> dict[str, jax.Array]:
        _, loss_key = jax.random.split(state.key())
        params = {**state.frozen, **state.params}
        return objectives.elbo_terms(modules, stage, params, videos, values_at(schedules, state.step), loss_key)

    return terms


def make_train_batches(config: ml_collections.ConfigDict, num_devices: int) -> Batches:
    return training.make_train_batches(config, *train_sampler(config), config.bs, num_devices)


def _with_lr(state: TrainState, lr: float) -> TrainState:
    return state.replace(opt_state=with_learning_rate(state.opt_state, lr))


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, stop_after_steps: int | None = None
) -> dict[str, Any]:
    """Train one stage (config.stage 1 or 2) in `workdir` with vdcore.loop, resuming from its newest checkpoint.

    stop_after_steps: end the process's work after this many steps of this call without a final
    checkpoint (simulates a pre-emption; used by the tests). Returns a summary dict (also written
    as `<workdir>/summary.json`).
    """
    config = stage_config(config, config.stage) if config.stage in (1, 2) else config
    check_config(config)
    modules = VDSMModules.from_config(config)
    schedules = make_schedules(config)

    def init():
        stage1_params = load_stage1_params(config, modules) if config.stage == 2 else None
        return init_state(config, modules, jax.random.key(config.seed), stage1_params)

    def write_outputs(state: TrainState, test_set: training.TestSet, epoch: int) -> None:
        outputs.write_all(config, modules, state, test_set, workdir, epoch)

    model = loop.Model(
        name=f"VDSM stage {config.stage}",
        batch_field="bs",
        make_batches=lambda num_devices: make_train_batches(config, num_devices),
        init_state=init,
        restore_state=lambda sharding: restore_state(config, modules, workdir, sharding=sharding),
        train_step=make_train_step(modules, config.stage, make_optimizer(config), schedules, config.num_particles),
        state_meta=lambda step, data_state: state_meta(config, step, data_state),
        steps_per_epoch=config.bs_per_epoch,
        total_steps=config.epochs * config.bs_per_epoch,
        remedy="resume with a smaller config.lr_resume",
        log_terms=make_terms_fn(modules, config.stage, schedules),
        write_outputs=write_outputs,
        picture_sampler=picture_sampler(config),
        plotted=("loss", *SCHEDULE_NAMES, "nll/x", "kl/ID", "kl/z", "kl/dz", "skipped_steps"),
        after_restore=(lambda state: _with_lr(state, config.lr_resume)) if config.lr_resume is not None else None,
    )
    return loop.run(config, workdir, model, stop_after_steps)


def train_both_stages(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Stage 1 into <workdir>/stage1, then stage 2 from it into <workdir>/stage2."""
    return training.train_both_stages(train_and_evaluate, config, workdir)
