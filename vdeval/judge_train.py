"""Training a judge on real labelled clips, resumably, and scoring it on the held-out ones.

`train_and_evaluate(config, workdir)`: Adam on the summed cross-entropies of every head (plus, for the identity
heads, the per-frame cross-entropy, weighted `frame_loss_weight`), data-parallel over the device mesh;
checkpoints every `save_every` steps (orbax, with the input pipeline's position, so a resumed run sees the
batches an uninterrupted one would); at the end the held-out accuracy per head on the real test clips is
written to <workdir>/judge.json and into the final checkpoint's meta.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from absl import logging
from tqdm import tqdm

from data_prep.input_pipeline import make_batches
from vdcore import preemption
from vdcore.checkpoint import CHECKPOINT_SUBDIR, Checkpointer
from vdcore.files import write_json
from vdcore.metrics_log import MetricsLogger
from vdcore.run_config import ConfigValueError, check_ranges
from vdcore.sharding import data_mesh, replicated_sharding, shard_batch
from vdcore.train_state import TrainState, apply_gradients_if_finite
from vdcore.training import host_scalars, save_or_stop
from vdeval.factors import head_classes
from vdeval.judge_augment import augment_clips
from vdeval.judge_data import JudgeData, judge_data
from vdeval.judge_model import Judge, is_power_of_two_from_8
from vdeval.trained_judge import (
    META_FORMAT,
    REPORT_FILE,
    TrainedJudge,
    abstract_state,
    judge_network,
    judge_optimizer,
    split_accuracy,
)


def default_config() -> ml_collections.ConfigDict:
    """The judge's settings (the peers' Sprites judge: Adam 1e-3, β (0.5, 0.999), batch 32)."""
    return ml_collections.ConfigDict(
        {
            "dataset": "",
            "dataset_config": "",  # '' = the dataset's default config
            "data_dir": "data",
            "seq_len": 0,  # 0 = the dataset's clip length
            "batch_size": 32,
            "steps": 1500,
            "lr": 1e-3,
            "lr_final_fraction": 0.05,
            "b1": 0.5,
            "b2": 0.999,
            "frame_loss_weight": 1.0,
            "augment_strength": 0.0,  # > 0: random affine shapes per clip (vdeval.judge_augment), e.g. 0.15 for digits
            "frame_features": 128,
            "hidden": 128,
            "width": 32,
            "resolution": 32,  # frames are averaged down to this many pixels (vdeval.judge_model.FrameEncoder)
            "convs_per_level": 1,  # convolutions per resolution level of the frame CNN (1: DCGAN's)
            "pool_frame_logits": False,  # identity heads also average their per-frame logits over the clip
            "centroid_crop": 0,  # > 0: the frame CNN sees a window this wide about each frame's centre of mass
            "seed": 0,
            "save_every": 250,
            "log_every": 50,
            "read_threads": 2,
            "prefetch": 2,
        }
    )


JUDGE_POSITIVE_INTS = ("batch_size", "steps", "frame_features", "hidden", "width", "resolution", "convs_per_level")
JUDGE_POSITIVE_INTS += ("save_every", "log_every")


def check_config(config: ml_collections.ConfigDict) -> None:
    """ConfigValueError naming the judge setting, its value and what is expected, before any data or compile work."""
    check_ranges(config, JUDGE_POSITIVE_INTS, ("lr",))
    for name, low, high in (("lr_final_fraction", 0.0, 1.0), ("b1", 0.0, 1.0), ("b2", 0.0, 1.0)):
        if not low <= config[name] < high:
            raise ConfigValueError(f"config.{name} must be in [{low:g}, {high:g}), got {config[name]!r}")
    if not 0.0 <= config.augment_strength <= 1.0:
        raise ConfigValueError(f"config.augment_strength must be in [0, 1], got {config.augment_strength!r}")
    crop = config.centroid_crop
    if crop != 0 and not is_power_of_two_from_8(crop):
        raise ConfigValueError(f"config.centroid_crop must be 0 (off) or a power of two >= 8, got {crop!r}")
    if config.seq_len < 0:
        raise ConfigValueError(f"config.seq_len must be >= 0 (0: the dataset's clip length), got {config.seq_len}")


def _meta(
    config: ml_collections.ConfigDict, data: JudgeData, step: int, data_state: Any, train_seconds: float = 0.0
) -> dict:
    return {
        "format": META_FORMAT,
        "step": step,
        "dataset": data.dataset,
        "dataset_config": data.dataset_config,
        "data_dir": os.path.abspath(config.data_dir),
        "video_shape": [data.seq_len, data.image_size, data.image_size, data.channels],
        "heads": [h.to_json() for h in data.heads],
        "network": {
            "frame_features": config.frame_features,
            "hidden": config.hidden,
            "width": config.width,
            "resolution": config.resolution,
            "convs_per_level": config.convs_per_level,
            "pool_frame_logits": config.pool_frame_logits,
            "centroid_crop": config.centroid_crop,
        },
        "optimizer": {
            "lr": config.lr,
            "lr_final_fraction": config.lr_final_fraction,
            "b1": config.b1,
            "b2": config.b2,
            "steps": config.steps,
            "batch_size": config.batch_size,
            "frame_loss_weight": config.frame_loss_weight,
            "augment_strength": config.augment_strength,
        },
        "seed": config.seed,
        "data_state": data_state,
        "train_seconds": round(train_seconds, 1),
    }


def loss_and_metrics(
    model: Judge, params: Any, videos: jax.Array, classes: dict[str, jax.Array], frame_loss_weight: float
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Summed mean cross-entropies of every head (sequence level) + frame_loss_weight · the framewise ones."""
    out = model.apply({"params": params}, videos)
    loss, metrics = jnp.zeros(()), {}
    for name, logits in out["logits"].items():
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, classes[name]).mean()
        loss += ce
        metrics[f"loss/{name}"] = ce
        metrics[f"train_accuracy/{name}"] = jnp.mean(jnp.argmax(logits, -1) == classes[name])
    for name, logits in out["frame_logits"].items():
        labels = jnp.broadcast_to(classes[name][:, None], logits.shape[:2])
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        loss += frame_loss_weight * ce
        metrics[f"frame_loss/{name}"] = ce
    metrics["loss"] = loss
    return loss, metrics


@functools.partial(jax.jit, static_argnums=(0, 1, 4, 5), donate_argnums=2)
def train_step(
    model: Judge,
    tx: optax.GradientTransformation,
    state: TrainState,
    batch: dict[str, jax.Array],
    frame_loss_weight: float,
    augment_strength: float = 0.0,
) -> tuple[TrainState, dict[str, jax.Array]]:
    classes = {k: v for k, v in batch.items() if k != "video"}
    videos = augment_clips(jax.random.fold_in(state.key(), state.step), batch["video"], augment_strength)
    grad_fn = jax.value_and_grad(loss_and_metrics, argnums=1, has_aux=True)
    (loss, metrics), grads = grad_fn(model, state.params, videos, classes, frame_loss_weight)
    state, finite = apply_gradients_if_finite(state, grads, loss, tx)
    return state, {**metrics, "finite": finite}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Train (or resume) the judge of config.dataset into `workdir`; returns its held-out report."""
    if not config.dataset:
        raise ValueError("the judge needs a dataset: --dataset NAME (sprites, moving_mnist, pendulum, mug_fed, kth)")
    check_config(config)
    data = judge_data(config.dataset, config.data_dir, config.dataset_config or None, config.seq_len, config.seed)
    meta0 = _meta(config, data, 0, None)
    model, tx = judge_network(meta0), judge_optimizer(meta0)
    mesh = data_mesh()
    batches = make_batches(
        data.train,
        sampler="prefix",
        sampler_args={"seq_len": data.seq_len},
        batch_size=config.batch_size,
        seed=config.seed,
        num_devices=mesh.size,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        read_threads=config.read_threads,
        prefetch=config.prefetch,
    )
    os.makedirs(workdir, exist_ok=True)
    checkpoints = Checkpointer(os.path.join(workdir, CHECKPOINT_SUBDIR), max_to_keep=2)
    video_shape = tuple(meta0["video_shape"])
    previous_seconds = 0.0
    if checkpoints.latest_step() is None:
        key = jax.random.key(config.seed)
        params = jax.jit(model.init)(key, jnp.zeros((1, *video_shape), jnp.float32))["params"]
        state = TrainState.create(params, tx, jax.random.fold_in(key, 1))
    else:
        state, meta = checkpoints.restore(abstract_state(model, tx, video_shape))
        if meta["dataset"] != data.dataset or list(meta["video_shape"]) != list(video_shape):
            raise ValueError(
                f"{workdir} holds a judge of '{meta['dataset']}' clips {meta['video_shape']}, not of "
                f"'{data.dataset}' {list(video_shape)}; use another --workdir"
            )
        if meta.get("data_state") is not None:
            batches.set_state(meta["data_state"])
        previous_seconds = float(meta.get("train_seconds", 0.0))
        logging.info("resumed the judge in %s from step %d", workdir, meta["step"])
    state = jax.device_put(state, replicated_sharding(mesh))
    start = int(state.step)
    logger = MetricsLogger(workdir)
    started = time.perf_counter()
    progress = tqdm(total=config.steps, initial=start, desc=f"judge {data.dataset}", unit="step", smoothing=0.1)
    metrics = None
    stopped: dict[str, str] = {}  # {'stopped_by': signal name} once a stop signal ended the loop
    with preemption.stop_on_signals() as stop:
        for step in range(start, config.steps):
            batch = next(batches)
            local = {"video": batch["video"], **head_classes(data.heads, batch)}
            state, metrics = train_step(
                model,
                tx,
                state,
                shard_batch(local, mesh),
                float(config.frame_loss_weight),
                float(config.augment_strength),
            )
            progress.update(1)
            done = step + 1
            if done % config.log_every == 0 or done == config.steps:
                scalars = host_scalars(metrics)
                logger.write(done, scalars)
                progress.set_postfix(loss=f"{scalars['loss']:.3f}")
            seconds = previous_seconds + time.perf_counter() - started
            save_due = done % config.save_every == 0 and done < config.steps
            meta = lambda: _meta(config, data, done, batches.get_state(), seconds)  # noqa: E731, B023 - called at once
            if save_or_stop(checkpoints, stop, save_due, step, state, meta, stopped):
                break
    progress.close()
    if stopped:
        logger.close()
        checkpoints.close()
        return {**stopped, "step": int(state.step)}
    train_seconds = previous_seconds + time.perf_counter() - started

    judge = TrainedJudge(model, jax.device_get(state.params), _meta(config, data, config.steps, None), workdir)
    with tqdm(total=len(data.test), desc="judge held-out clips", unit="clip") as bar:
        report = split_accuracy(judge, data.test, bar)
    report.update(
        split=data.test.split,
        dataset=data.dataset,
        dataset_config=data.dataset_config,
        seq_len=data.seq_len,
        image_size=data.image_size,
        train_clips=len(data.train),
        steps=config.steps,
        train_seconds=round(train_seconds, 1),
    )
    final_meta = {**_meta(config, data, config.steps, batches.get_state(), train_seconds), "report": report}
    if checkpoints.latest_step() != config.steps:
        checkpoints.save(config.steps, jax.device_get(state), final_meta)
    write_json(os.path.join(workdir, REPORT_FILE), report)
    logger.close()
    checkpoints.close()
    return report
