"""The one training loop both models run: `run(config, workdir, model)`.

A model supplies only what is its own (`Model`): its pure step function, how to build or restore its state,
what its checkpoints' meta say, which sampler feeds each stage, and its pictures. The loop owns the rest:
the device mesh (every device of every process), restore-or-init (the input pipeline resumes where the
checkpoint was), the step clock, metrics, the checkpoint cadence, the non-finite stop rule, stop signals
(vdcore.preemption) and when pictures are drawn.

The host never waits for the accelerator between check points. A step is one compiled call of the model's
step followed by `_accumulate`, which keeps on device what the host needs later: the last step's metrics,
the sums of the epoch-averaged metrics over the finite steps of the current epoch, the skipped-update count
and the first step (counted from 1, as in the logs) at which `max_consecutive_nonfinite` skips in a row
were reached. The host reads that
accumulator (one transfer) only at check points: log steps (every `log_every_steps`), epoch ends, saves,
tests, stop requests and the last step. Every other step runs under
`jax.transfer_guard_device_to_host("disallow")`, so on a GPU or TPU a stray device-to-host copy fails loudly
instead of silently stalling asynchronous dispatch (on the CPU backend arrays already live in host memory and
the guard does not fire; tests/test_loop.py counts host reads there). The stop after K consecutive non-finite updates stays exact: the
accumulator records the step at which the K-th came, the check before every save refuses to write a state
after it (the last good checkpoint stays the newest), and the error names that step.

Several processes (`jax.distributed`, see vdcore.distributed): every process runs this loop on its rows of
each global batch (data_prep.input_pipeline), all of them compute and checkpoint collectively, and only
process 0 writes metrics, TensorBoard, pictures and summary.json. A stop signal reaching any process is
agreed on at the next check point, so all stop at the same step with one checkpoint.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from jax import lax
from jax.experimental import multihost_utils
from tqdm import tqdm

from data_prep.batch_split import check_divisible
from data_prep.input_pipeline import Batches, ensure_built
from vdcore import preemption, training
from vdcore.checkpoint import CHECKPOINT_SUBDIR, Checkpointer
from vdcore.metrics_log import MetricsLogger
from vdcore.sharding import data_mesh, fetch, replicate, replicated_sharding, shard_batch
from vdcore.train_state import NonFiniteTrainingError

State = Any
Metrics = dict[str, jax.Array]
Step = Callable[[State, jax.Array], tuple[State, Metrics]]


@dataclasses.dataclass(frozen=True)
class Model:
    """What one model stage gives the loop.

    name: shown on the progress bar ('VDSM stage 1').
    batch_field: the config field holding the global batch size ('bs'), named in errors.
    make_batches: num_devices -> the run's training batches (data_prep Batches of this process's rows).
    init_state: () -> a fresh state (host or local arrays; the loop replicates it over the mesh).
    restore_state: replicated sharding -> (state, meta) of the run's newest complete checkpoint.
    train_step: pure (state, inputs) -> (state, metrics); metrics hold scalars, 'finite' among them.
    inputs: the batch entries the step takes: one name gives it that array ('video' (B, ...)), a tuple of names
        a dict of them (e.g. precomputed codes).
    state_meta: (steps done, data iterator state) -> the checkpoint's JSON meta.
    steps_per_epoch, total_steps: the step clock.
    remedy: what the non-finite error suggests besides config.debug_nans.
    log_terms: optional pure (state, videos) -> scalars logged with a log step, computed before the step.
    epoch_metrics: metrics averaged over each epoch's finite steps, logged as 'epoch/<name>' at epoch ends.
    describe_epoch: optional (epoch, means) -> the line logged at each epoch end.
    write_outputs: optional (host state, test set, epoch) -> None, the pictures (process 0, at test epochs), drawn
        from the fixed test clips of `picture_sampler` (vdcore.training.load_test_set, loaded once, when first needed).
    plotted, plot_title: the loss-curve panels drawn at test epochs.
    after_restore: optional state -> state applied to a resumed state before the input pipeline is built (e.g. a
        new learning rate, or a check that refuses the resume before costly pipeline setup).
    """

    name: str
    batch_field: str
    make_batches: Callable[[int], Batches]
    init_state: Callable[[], State]
    restore_state: Callable[[jax.sharding.Sharding], tuple[State, dict]]
    train_step: Step
    state_meta: Callable[[int, Any], dict]
    steps_per_epoch: int
    total_steps: int
    remedy: str
    log_terms: Callable[[State, jax.Array], Metrics] | None = None
    epoch_metrics: tuple[str, ...] = ()
    describe_epoch: Callable[[int, dict[str, float]], str] | None = None
    write_outputs: Callable[[State, training.TestSet, int], None] | None = None
    picture_sampler: tuple[str, dict[str, Any]] = ("window", {"seq_len": 1})
    plotted: tuple[str, ...] = ("loss",)
    plot_title: str = ""
    after_restore: Callable[[State], State] | None = None
    inputs: str | tuple[str, ...] = "video"


def _initial_accumulator(model: Model, metrics: Metrics) -> dict[str, Any]:
    """The accumulator's start value (host arrays), shaped like one step's metrics (from jax.eval_shape)."""
    return {
        "last": jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), metrics),
        "epoch_sum": {k: np.zeros((), np.float32) for k in model.epoch_metrics},
        "epoch_count": np.zeros((), np.int32),
        "skipped": np.zeros((), np.int32),
        "tripped_at": np.zeros((), np.int32),
        "consecutive": np.zeros((), np.int32),
    }


def _accumulate(train_step: Step, limit: int, state: State, acc: dict, inputs: Any) -> tuple[State, dict]:
    """One training step, and what the host reads at the next check point (see the module docstring)."""
    state, metrics = train_step(state, inputs)
    finite = metrics["finite"]
    consecutive = state.nonfinite_consecutive
    tripped = (acc["tripped_at"] == 0) & (consecutive >= limit)
    acc = {
        # Strongly typed: a metric computed from Python floats (VDSM's schedule values) comes out weak-typed, and
        # a weak-typed accumulator on the next call would be a new jit cache key (one extra trace and compile).
        "last": jax.tree.map(lambda m: lax.convert_element_type(m, m.dtype), metrics),
        "epoch_sum": {k: s + jnp.where(finite, metrics[k], 0.0) for k, s in acc["epoch_sum"].items()},
        "epoch_count": acc["epoch_count"] + finite.astype(jnp.int32),
        "skipped": state.nonfinite_total,
        "tripped_at": jnp.where(tripped, state.step, acc["tripped_at"]),
        "consecutive": consecutive,
    }
    return state, acc


def _step_inputs(inputs: str | tuple[str, ...], batch: dict[str, np.ndarray], mesh: Any) -> Any:
    """This process's rows of the batch entries the step takes, as global arrays sharded over the mesh."""
    names = (inputs,) if isinstance(inputs, str) else inputs
    sharded = shard_batch({name: batch[name] for name in names}, mesh)
    return sharded[inputs] if isinstance(inputs, str) else sharded


def _new_epoch(acc: dict) -> dict:
    return {
        **acc,
        "epoch_sum": jax.tree.map(jnp.zeros_like, acc["epoch_sum"]),
        "epoch_count": jnp.zeros_like(acc["epoch_count"]),
    }


def _stop_agreed(requested: bool) -> bool:
    """Whether any process was asked to stop (one tiny collective; every process calls it at the same step)."""
    if jax.process_count() == 1:
        return requested
    return bool(np.any(multihost_utils.process_allgather(np.asarray(requested))))


def _check_same_program(jitted: Any, *args: Any) -> None:
    """Raise unless every process traced the same program for `jitted(*args)` (multi-process runs only).

    JAX runs one program per process and pairs their collectives by position; a program whose operations
    follow a Python set's or dict's hash order (PYTHONHASHSEED differs per process) silently pairs different
    gradients in the all-reduce (numpyro 0.19's Trace_ELBO did; vdsm_jax.objectives.elbo_loss). The digest
    of the lowered StableHLO is compared once, before the first step.
    """
    text = jitted.lower(*args).as_text()
    digest = np.frombuffer(hashlib.sha256(text.encode()).digest(), np.uint8)
    digests = np.asarray(multihost_utils.process_allgather(digest)).reshape(jax.process_count(), -1)
    differing = [p for p in range(len(digests)) if not np.array_equal(digests[p], digests[0])]
    if differing:
        raise RuntimeError(
            f"processes {differing} traced a different training step from process 0 (StableHLO digests differ), "
            "so their collectives would pair wrong values; the step's Python code must not depend on hash order "
            "or on the process (set PYTHONHASHSEED to one value in every process to find out whether it does)"
        )


def run(
    config: ml_collections.ConfigDict, workdir: str, model: Model, stop_after_steps: int | None = None
) -> dict[str, Any]:
    """Train `model` in `workdir`, resuming from its newest checkpoint; returns the run summary.

    config: the stage's flat config (dataset, data_dir, dataset_config, manual_dir, debug_nans,
    keep_checkpoints, keep_period (epochs), model_save_interval, model_test_interval, log_every_steps,
    max_consecutive_nonfinite, and the batch size field `model.batch_field`).
    stop_after_steps: end this call after that many steps without a final checkpoint (a simulated crash; tests).
    Raises NonFiniteTrainingError after config.max_consecutive_nonfinite skipped updates in a row.
    """
    check_divisible(config[model.batch_field], jax.device_count(), f"config.{model.batch_field}")
    if config.debug_nans:
        jax.config.update("jax_debug_nans", True)
    lead = jax.process_index() == 0
    os.makedirs(workdir, exist_ok=True)
    ensure_built(config.dataset, config.data_dir, config.dataset_config, config.manual_dir or None)

    mesh = data_mesh()
    replicated = replicated_sharding(mesh)
    checkpoints = Checkpointer(
        os.path.join(workdir, CHECKPOINT_SUBDIR),
        max_to_keep=config.keep_checkpoints,
        keep_period=config.get("keep_period", 0) * model.steps_per_epoch or None,
        asynchronous=True,
    )
    started = time.perf_counter()  # the input pipeline's setup counts (e.g. DRNet's cached pose codes)
    state, resumed, batches = training.restore_or_init(
        checkpoints,
        lambda: model.make_batches(mesh.size),
        lambda: model.restore_state(replicated),
        model.init_state,
        model.after_restore,
    )
    state = replicate(state, mesh)

    limit = int(config.max_consecutive_nonfinite)
    step_fn = jax.jit(functools.partial(_accumulate, model.train_step, limit), donate_argnums=(0, 1))
    terms_fn = jax.jit(model.log_terms) if model.log_terms is not None else None
    acc = None  # built from the first batch's metric shapes

    clock = training.EpochClock(
        model.steps_per_epoch, model.total_steps, config.model_save_interval, config.model_test_interval
    )
    start_step = int(fetch(state.step))
    summary: dict[str, Any] = {"stage": config.stage, "workdir": os.path.abspath(workdir), "start_step": start_step}
    logger = MetricsLogger(workdir) if lead else None
    drawing = lead and model.write_outputs is not None and config.model_test_interval > 0
    progress = tqdm(total=model.total_steps, initial=start_step, desc=model.name, unit="step", disable=not lead)
    rate = training.StepRate()
    metrics: dict[str, float] = {}
    skipped_seen, last_check = int(fetch(state.nonfinite_total)), start_step
    test_set = None
    # Training wall time (input pipeline setup, compilation, pictures and checkpoint writes included) summed over
    # every sitting of the run: each checkpoint's meta carries it on, and the accuracy-vs-time curve reads it.
    carried_seconds = float(resumed.get("train_seconds", 0.0)) if resumed is not None else 0.0

    def train_seconds() -> float:
        return carried_seconds + time.perf_counter() - started

    try:
        with preemption.stop_on_signals() as stop:
            for step in range(start_step, model.total_steps):
                if stop_after_steps is not None and step - start_step >= stop_after_steps:
                    break
                epoch_done, epoch, save_due, test_due = clock.after(step)
                log_due = (step + 1) % config.log_every_steps == 0 or step + 1 == model.total_steps
                stop_asked = stop.requested is not None and jax.process_count() == 1
                check = log_due or epoch_done or save_due or test_due or stop_asked
                with jax.transfer_guard_device_to_host("allow" if check else "disallow"):
                    inputs = _step_inputs(model.inputs, next(batches), mesh)
                    if acc is None:
                        acc = replicate(
                            _initial_accumulator(model, jax.eval_shape(model.train_step, state, inputs)[1]), mesh
                        )
                        if jax.process_count() > 1:
                            _check_same_program(step_fn, state, acc, inputs)
                    terms = terms_fn(state, inputs) if (log_due and terms_fn is not None) else None
                    state, acc = step_fn(state, acc, inputs)
                rate.tick()
                progress.update(1)
                if not check:
                    continue

                host = fetch(acc)
                metrics = {k: float(v) for k, v in host["last"].items()}
                scalars: dict[str, float] = {}
                if log_due:
                    scalars.update({k: v for k, v in metrics.items() if not k.endswith("finite")})
                    scalars.update({k: float(v) for k, v in fetch(terms or {}).items()})
                    scalars.update(
                        skipped_steps=int(host["skipped"]),
                        steps_per_second=rate.rate(),
                        epoch=(step + 1) / model.steps_per_epoch,
                        train_seconds=train_seconds(),
                    )
                    progress.set_postfix(loss=f"{metrics['loss']:.4g}")
                if epoch_done and model.epoch_metrics:
                    count = int(host["epoch_count"])
                    means = {k: float(v) / count if count else math.nan for k, v in host["epoch_sum"].items()}
                    scalars.update({f"epoch/{k}": v for k, v in means.items()})
                    summary["last_epoch_means"] = means
                    if model.describe_epoch is not None and lead:
                        logging.info(model.describe_epoch(epoch - 1, means))
                    acc = _new_epoch(acc)
                if scalars and logger is not None:
                    logger.write(step + 1, scalars)
                if int(host["skipped"]) > skipped_seen:
                    logging.warning(
                        "steps %d-%d: %d non-finite update(s) skipped, %d in a row at step %d",
                        last_check + 1,
                        step + 1,
                        int(host["skipped"]) - skipped_seen,
                        int(host["consecutive"]),
                        step + 1,
                    )
                skipped_seen, last_check = int(host["skipped"]), step + 1
                if int(host["tripped_at"]) > 0:
                    raise _nonfinite_error(int(host["tripped_at"]), limit, checkpoints, model.remedy)

                stopping = _stop_agreed(stop.requested is not None)
                if save_due or stopping:
                    meta = model.state_meta(step + 1, batches.get_state())
                    meta["train_seconds"] = train_seconds()
                    checkpoints.save(step + 1, state, meta)
                if stopping:
                    summary["stopped_by"] = stop.requested or "a stop signal to another process"
                    break
                if drawing and test_due:
                    logger.plot(list(model.plotted), title=model.plot_title)
                    if test_set is None:
                        test_set = training.load_test_set(config, *model.picture_sampler)
                    model.write_outputs(fetch(state), test_set, epoch)
    finally:
        progress.close()
        checkpoints.wait_until_finished()
        saved = checkpoints.all_steps()
        checkpoints.close()  # ends orbax's background saving machinery with the run
        if logger is not None:
            logger.close()
    summary.update(
        final_step=int(fetch(state.step)),
        final_metrics=metrics,
        skipped_steps=int(fetch(state.nonfinite_total)),
        checkpoints=saved,
    )
    if lead:
        training.write_summary(workdir, summary)
    return summary


def _nonfinite_error(step: int, limit: int, checkpoints: Checkpointer, remedy: str) -> NonFiniteTrainingError:
    checkpoints.wait_until_finished()
    return NonFiniteTrainingError(
        f"{limit} consecutive non-finite updates at step {step}; stopping. The last good checkpoint in "
        f"{checkpoints.directory} (step {checkpoints.latest_step()}) is intact. Set config.debug_nans=True to "
        f"locate the first NaN, or {remedy}."
    )
