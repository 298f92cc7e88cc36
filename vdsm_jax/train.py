"""VDSM training: the pure jitted train step and `train_and_evaluate(config, workdir)`.

The train step is a pure function of (state, videos): it splits the state's PRNG
key, reads the four schedule values at the state's step, differentiates NumPyro's
Trace_ELBO with respect to the trained parameters, and applies Adam unless the
loss or a gradient is non-finite (then the update is skipped and counted).
Data parallelism: the state is replicated and the batch sharded along the mesh
axis 'data'; jit partitions the computation over every device.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from tqdm import tqdm

from data_prep.input_pipeline import Batches, ensure_built
from vdcore import preemption, training
from vdcore.checkpoint import CHECKPOINT_SUBDIR, Checkpointer
from vdcore.metrics_log import MetricsLogger
from vdcore.run_config import stage_config
from vdcore.sharding import check_divisible, data_mesh, replicated_sharding, shard_batch
from vdcore.train_state import TrainState, apply_gradients_if_finite
from vdsm_jax import objectives
from vdsm_jax.config_defaults import check_config
from vdsm_jax.models import VDSMModules
from vdsm_jax.schedules import VDSMSchedules, make_schedules, values_at
from vdsm_jax.state import (
    init_state,
    load_stage1_params,
    make_optimizer,
    restore_state,
    state_meta,
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


def sampler_args(config: ml_collections.ConfigDict) -> tuple[str, dict[str, Any]]:
    if config.stage == 1:
        return "vdsm_stage1", {"seq_len": config.seq_len, "flip_prob": config.flip_prob}
    return "vdsm_stage2", {"seq_len": config.seq_len}


def make_train_batches(config: ml_collections.ConfigDict, num_devices: int) -> Batches:
    return training.make_train_batches(config, *sampler_args(config), config.bs, num_devices)


def _with_lr(state: TrainState, lr: float) -> TrainState:
    opt_state = state.opt_state
    hyperparams = dict(opt_state.hyperparams, learning_rate=jnp.asarray(lr, jnp.float32))
    return state.replace(opt_state=opt_state._replace(hyperparams=hyperparams))


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, stop_after_steps: int | None = None
) -> dict[str, Any]:
    """Train one stage (config.stage 1 or 2) in `workdir`, resuming from its newest checkpoint.

    stop_after_steps: end the process's work after this many steps of this call without a final
    checkpoint (simulates a pre-emption; used by the tests). Returns a summary dict (also written
    as `<workdir>/summary.json`).
    """
    from vdsm_jax import outputs  # pictures need the trained model only at test intervals

    config = stage_config(config, config.stage) if config.stage in (1, 2) else config
    check_config(config)
    check_divisible(config.bs, jax.device_count(), "config.bs")  # before the data is built
    if config.debug_nans:
        jax.config.update("jax_debug_nans", True)
    os.makedirs(workdir, exist_ok=True)
    ensure_built(config.dataset, config.data_dir, config.dataset_config, config.manual_dir or None)

    modules = VDSMModules.from_config(config)
    schedules = make_schedules(config)
    tx = make_optimizer(config)
    mesh = data_mesh()
    checkpoints = Checkpointer(os.path.join(workdir, CHECKPOINT_SUBDIR), max_to_keep=config.keep_checkpoints)
    batches = make_train_batches(config, mesh.size)

    def init():
        stage1_params = load_stage1_params(config, modules) if config.stage == 2 else None
        return init_state(config, modules, jax.random.key(config.seed), stage1_params)

    state, resumed = training.restore_or_init(
        checkpoints, batches, lambda: restore_state(config, modules, workdir), init
    )
    if resumed is not None and config.lr_resume is not None:
        state = _with_lr(state, config.lr_resume)
    state = jax.device_put(state, replicated_sharding(mesh))

    train_step = jax.jit(make_train_step(modules, config.stage, tx, schedules, config.num_particles), donate_argnums=0)
    terms_fn = jax.jit(make_terms_fn(modules, config.stage, schedules))
    logger = MetricsLogger(workdir)
    total_steps = config.epochs * config.bs_per_epoch
    clock = training.EpochClock(
        config.bs_per_epoch, total_steps, config.model_save_interval, config.model_test_interval
    )
    start_step = int(state.step)
    summary: dict[str, Any] = {"stage": config.stage, "workdir": os.path.abspath(workdir), "start_step": start_step}
    test_set = outputs.load_test_set(config) if jax.process_index() == 0 and config.model_test_interval > 0 else None

    progress = tqdm(total=total_steps, initial=start_step, desc=f"VDSM stage {config.stage}", unit="step")
    rate = training.StepRate()
    metrics: dict[str, float] = {}
    with preemption.stop_on_signals() as stop:
        for step in range(start_step, total_steps):
            if stop_after_steps is not None and step - start_step >= stop_after_steps:
                break
            videos = shard_batch({"video": next(batches)["video"]}, mesh)["video"]
            log_now = (step + 1) % config.log_every_steps == 0 or step + 1 == total_steps
            terms = training.host_scalars(terms_fn(state, videos)) if log_now else {}
            state, step_metrics = train_step(state, videos)
            rate.tick()
            metrics = training.host_scalars(step_metrics)
            progress.update(1)
            progress.set_postfix(loss=f"{metrics['loss']:.1f}")
            if log_now:
                scalars = {
                    "loss": metrics["loss"],
                    **{name: metrics[name] for name in SCHEDULE_NAMES},
                    **terms,
                    "skipped_steps": int(state.nonfinite_total),
                    "steps_per_second": rate.rate(),
                    "epoch": (step + 1) / config.bs_per_epoch,
                }
                logger.write(step + 1, scalars)
            if not metrics["finite"]:
                training.raise_if_too_many_nonfinite(
                    step,
                    int(state.nonfinite_consecutive),
                    config.max_consecutive_nonfinite,
                    checkpoints,
                    "resume with a smaller config.lr_resume",
                    progress,
                )
            _, epoch, save_due, test_due = clock.after(step)
            meta = lambda: state_meta(config, step + 1, batches.get_state())  # noqa: E731, B023 - called at once
            if training.save_or_stop(checkpoints, stop, save_due, step, state, meta, summary):
                break
            if test_set is not None and test_due:
                logger.plot(["loss", *SCHEDULE_NAMES, "nll/x", "kl/ID", "kl/z", "kl/dz", "skipped_steps"])
                outputs.write_all(config, modules, jax.device_get(state), test_set, workdir, epoch)
    progress.close()
    logger.close()
    return training.finish_summary(workdir, summary, state, metrics, checkpoints)


def train_both_stages(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Stage 1 into <workdir>/stage1, then stage 2 from it into <workdir>/stage2."""
    return training.train_both_stages(train_and_evaluate, config, workdir)
