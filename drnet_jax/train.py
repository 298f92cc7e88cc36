"""DRNet training: the pure jitted updates of both stages and `train_and_evaluate(config, workdir)`.

Stage 1, one training step = two pure functions of (state, videos (B, 4, S, S, nc)):
  `discriminator_update`: splits the run's PRNG key, builds the discriminator batch from EP's
      poses of x_c1, x_c2 and takes one optimiser step on C;
  `main_update`: one optimiser step on EC, EP, D with C as just updated.
Stage 2: `lstm_update` of (state, videos (B, n_past + n_future, S, S, nc)), or with config.pose_codes 'cached'
  of (state, the frozen encoders' codes of those frames, computed once: drnet_jax.pose_codes).
Each update is skipped (parameters, optimiser state and BatchNorm averages unchanged, the
skip counted) when its loss or a gradient is not finite. vdcore.loop runs them: the state
is replicated and the batch sharded along the mesh axis 'data'; jit partitions every update
over all devices, and BatchNorm's batch statistics are those of the whole global batch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from data_prep.input_pipeline import Batches
from drnet_jax import losses, outputs, pose_codes
from drnet_jax.config_defaults import check_config, stage_config
from drnet_jax.data import picture_sampler, train_sampler
from drnet_jax.models import DRNetModules
from drnet_jax.state import (
    Stage1State,
    init_state,
    load_stage1_variables,
    make_optimizer,
    restore_state,
    state_meta,
)
from vdcore import loop, training
from vdcore.train_state import TrainState, apply_gradients_if_finite

Step = Callable[[Any, jax.Array], tuple[Any, dict[str, jax.Array]]]
# Per-step metrics averaged over each epoch (the original prints rec loss, sim loss and discriminator accuracy).
EPOCH_METRICS = {1: ("rec_loss", "sim_loss", "disc_acc", "sd_loss", "disc_bce"), 2: ("mse",)}
PLOTTED = {
    1: (
        "rec_loss",
        "sim_loss",
        "disc_acc",
        "sd_loss",
        "disc_bce",
        "epoch/rec_loss",
        "epoch/sim_loss",
        "epoch/disc_acc",
    ),
    2: ("mse", "epoch/mse", "loss"),
}


def _keep_if(finite: jax.Array, new: Any, old: Any) -> Any:
    return jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)


def make_discriminator_update(modules: DRNetModules, tx: optax.GradientTransformation) -> Step:
    """(Stage1State, videos (B, 4, S, S, nc)) → (state, {'disc_bce', 'disc_acc', 'disc_finite'}); pure."""

    def loss_fn(sd_params, h_p1, h_p2, targets):
        return losses.discriminator_loss(modules, sd_params, h_p1, h_p2, targets)

    def update(state: Stage1State, videos: jax.Array):
        next_key, perm_key = jax.random.split(state.main.key())
        batch_stats = state.main.frozen["batch_stats"]
        h_p1, h_p2, targets, new_stats = losses.discriminator_inputs(
            modules, state.main.params, batch_stats, videos, perm_key
        )
        (bce, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.disc.params, h_p1, h_p2, targets)
        disc, finite = apply_gradients_if_finite(state.disc, grads, bce, tx)
        main = state.main.replace(
            rng=jax.random.key_data(next_key), frozen={"batch_stats": _keep_if(finite, new_stats, batch_stats)}
        )
        metrics = {"disc_bce": bce, "disc_acc": losses.discriminator_accuracy(logits), "disc_finite": finite}
        return Stage1State(main=main, disc=disc), metrics

    return update


def make_main_update(modules: DRNetModules, tx: optax.GradientTransformation, sd_weight: float) -> Step:
    """(Stage1State, videos (B, 4, S, S, nc)) → (state, {'loss', 'sim_loss', 'rec_loss', 'sd_loss', 'main_finite'})."""

    def loss_fn(trained, sd_params, batch_stats, videos):
        return losses.main_loss(modules, trained, sd_params, batch_stats, videos, sd_weight)

    def update(state: Stage1State, videos: jax.Array):
        batch_stats = state.main.frozen["batch_stats"]
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.main.params, state.disc.params, batch_stats, videos
        )
        main, finite = apply_gradients_if_finite(state.main, grads, loss, tx)
        main = main.replace(frozen={"batch_stats": _keep_if(finite, aux["batch_stats"], batch_stats)})
        metrics = {"loss": loss, "sim_loss": aux["sim_loss"], "rec_loss": aux["rec_loss"], "sd_loss": aux["sd_loss"]}
        return state.replace(main=main), {**metrics, "main_finite": finite}

    return update


def make_stage1_step(modules: DRNetModules, tx: optax.GradientTransformation, sd_weight: float) -> Step:
    """One stage-1 training step: the discriminator update, then the main update (as the original)."""
    discriminator_update = make_discriminator_update(modules, tx)
    main_update = make_main_update(modules, tx, sd_weight)

    def step(state: Stage1State, videos: jax.Array):
        state, disc_metrics = discriminator_update(state, videos)
        state, main_metrics = main_update(state, videos)
        finite = disc_metrics["disc_finite"] & main_metrics["main_finite"]
        return state, {**disc_metrics, **main_metrics, "finite": finite}

    return step


def _lstm_update(modules: DRNetModules, tx: optax.GradientTransformation, targets: Callable[..., Any]) -> Step:
    """The stage-2 update given targets(state, inputs) → (h_c (B, content_dim), poses (B, T, pose_dim))."""

    def loss_fn(params, h_c, poses):
        return losses.lstm_loss(modules, params, h_c, poses)

    def update(state: TrainState, inputs: Any):
        h_c, poses = targets(state, inputs)
        (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, h_c, poses)
        new_state, finite = apply_gradients_if_finite(state, grads, loss, tx)
        return new_state, {"loss": loss, "mse": loss / poses.shape[1], "finite": finite}

    return update


def make_lstm_update(modules: DRNetModules, tx: optax.GradientTransformation, n_past: int, bn_train: bool) -> Step:
    """(TrainState, videos (B, n_past + n_future, S, S, nc)) → (state, {'loss' (sum over steps), 'mse', 'finite'}).

    'mse' is loss / (n_past + n_future), the value the original prints per epoch.
    """

    def targets(state: TrainState, videos: jax.Array):
        frozen = state.frozen
        return losses.lstm_targets(modules, frozen["params"], frozen["batch_stats"], videos, n_past, bn_train)

    return _lstm_update(modules, tx, targets)


def make_cached_lstm_update(modules: DRNetModules, tx: optax.GradientTransformation) -> Step:
    """(TrainState, {'poses' (B, T, pose_dim), 'content' (B, content_dim)}) → the update of `make_lstm_update`
    from codes computed once (drnet_jax.pose_codes; config.pose_codes = 'cached')."""
    return _lstm_update(modules, tx, lambda state, codes: (codes["content"], codes["poses"]))


def make_train_step(config: ml_collections.ConfigDict, modules: DRNetModules) -> Step:
    """The pure training step of config.stage (jit it; donate the state)."""
    tx = make_optimizer(config)
    if config.stage == 1:
        return make_stage1_step(modules, tx, float(config.sd_weight))
    if config.pose_codes == "cached":
        return make_cached_lstm_update(modules, tx)
    return make_lstm_update(modules, tx, int(config.n_past), bool(config.frozen_bn_train_mode))


def make_train_batches(config: ml_collections.ConfigDict, num_devices: int) -> Batches:
    return training.make_train_batches(config, *train_sampler(config), config.batch_size, num_devices)


def _epoch_line(stage: int, epoch: int, means: dict[str, float]) -> str:
    if stage == 1:
        return (
            f"[{epoch:02d}] rec loss: {means['rec_loss']:.4f} | sim loss: {means['sim_loss']:.4f} | "
            f"scene disc acc: {100 * means['disc_acc']:.3f}%"
        )
    return f"[{epoch:02d}] mse loss: {means['mse']:.6f}"


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, stop_after_steps: int | None = None
) -> dict[str, Any]:
    """Train one stage (config.stage 1 or 2) in `workdir` with vdcore.loop, resuming from its newest checkpoint.

    stop_after_steps: end this call's work after that many steps without a final checkpoint (simulates a
    pre-emption; used by the tests). Per-epoch means cover the finite steps this call ran of the epoch.
    Returns a summary dict (also written as `<workdir>/summary.json`).
    """
    config = stage_config(config, config.stage)
    check_config(config)
    modules = DRNetModules.from_config(config)
    cached = config.stage == 2 and config.pose_codes == "cached"
    stage1_variables = functools.cache(lambda: load_stage1_variables(config))

    def init():
        stage1 = stage1_variables() if config.stage == 2 else None
        return init_state(config, modules, jax.random.key(config.seed), stage1)

    def make_batches(num_devices: int) -> Batches:
        if cached:
            return pose_codes.code_batches(config, modules, *stage1_variables(), num_devices)
        return make_train_batches(config, num_devices)

    def check_frozen(state: TrainState) -> TrainState:
        """The cached codes come from config.stage1_workdir; a resumed run's frozen encoders must be those."""
        params, batch_stats = stage1_variables()
        expected = {"params": params, "batch_stats": batch_stats}
        same = jax.tree.structure(state.frozen) == jax.tree.structure(expected) and all(
            np.array_equal(a, b) for a, b in zip(jax.tree.leaves(state.frozen), jax.tree.leaves(expected), strict=True)
        )
        if not same:
            raise ValueError(
                f"{workdir}: this stage-2 run's frozen encoders differ from those of config.stage1_workdir="
                f"{config.stage1_workdir!r} (epoch {config.stage1_epoch}), which the cached pose codes were "
                "computed with; resume with the stage-1 run and epoch it started from"
            )
        return state

    def write_outputs(state: Any, test_set: training.TestSet, epoch: int) -> None:
        outputs.write_all(config, modules, state, test_set, workdir, epoch)

    model = loop.Model(
        name=f"DRNet stage {config.stage}",
        batch_field="batch_size",
        make_batches=make_batches,
        init_state=init,
        restore_state=lambda sharding: restore_state(config, modules, workdir, sharding=sharding),
        train_step=make_train_step(config, modules),
        state_meta=lambda step, data_state: state_meta(config, step, data_state),
        steps_per_epoch=config.epoch_size,
        total_steps=config.niter * config.epoch_size,
        remedy="resume with a smaller config.lr",
        epoch_metrics=EPOCH_METRICS[config.stage],
        describe_epoch=functools.partial(_epoch_line, config.stage),
        write_outputs=write_outputs,
        picture_sampler=picture_sampler(config),
        plotted=PLOTTED[config.stage],
        plot_title=f"DRNet stage {config.stage}",
        after_restore=check_frozen if cached else None,
        inputs=pose_codes.CODE_INPUTS if cached else "video",
    )
    return loop.run(config, workdir, model, stop_after_steps)


def train_both_stages(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Stage 1 into <workdir>/stage1, then stage 2 from it into <workdir>/stage2."""
    return training.train_both_stages(train_and_evaluate, config, workdir)
