"""The pieces of training loops (vdcore.loop's, and the judge's in vdeval) that do not depend on a model.

- `make_train_batches` / `load_test_set`: the run's endless training batches (sharded over the mesh's
  devices and this process's share of the data) and the fixed test batch the pictures are drawn from.
- `restore_or_init`: resume from the newest checkpoint (and the input pipeline's position) or start fresh.
- `EpochClock`: which of save / test is due after a step.
- `StepRate`: steps per second between log points.
- `save_or_stop`: the periodic checkpoint, and the one a stop signal asks for before the loop ends.
- `write_summary`: the run's summary.json.
- `train_both_stages`: stage 1, then stage 2 from it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from data_prep.input_pipeline import Batches, make_batches
from vdcore.checkpoint import Checkpointer
from vdcore.files import write_json
from vdcore.preemption import StopRequest
from vdcore.run_config import stage_config


def make_train_batches(
    config: ml_collections.ConfigDict, sampler: str, sampler_args: dict[str, Any], batch_size: int, num_devices: int
) -> Batches:
    """Endless training batches of config.dataset / config.train_split for this process (multi-host aware)."""
    return make_batches(
        config.dataset,
        config.train_split,
        sampler,
        sampler_args,
        batch_size=batch_size,
        data_dir=config.data_dir,
        config=config.dataset_config,
        **stream_settings(config, num_devices),
    )


def stream_settings(config: ml_collections.ConfigDict, num_devices: int) -> dict[str, Any]:
    """The run's example-stream settings for data_prep's make_batches / sampler_batches: its seed, this
    process's place among the processes, the reader threads and prefetch."""
    return {
        "seed": config.seed,
        "num_devices": num_devices,
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "read_threads": config.read_threads,
        "prefetch": config.prefetch,
    }


@dataclasses.dataclass
class TestSet:
    """The fixed batch of test-split clips the pictures and code exports are made from."""

    videos: np.ndarray  # (N, T, H, W, C) float32 in [0, 1]
    labels: dict[str, np.ndarray]


def load_test_set(config: ml_collections.ConfigDict, sampler: str, sampler_args: dict[str, Any]) -> TestSet:
    """config.num_test_sequences clips of config.test_split, the same ones every time (seed config.seed + 1)."""
    batch = next(
        make_batches(
            config.dataset,
            config.test_split,
            sampler,
            sampler_args,
            batch_size=config.num_test_sequences,
            data_dir=config.data_dir,
            config=config.dataset_config,
            seed=config.seed + 1,
            num_devices=1,
            read_threads=0,
        )
    )
    return TestSet(batch["video"], {k: v for k, v in batch.items() if k != "video"})


def restore_or_init(
    checkpoints: Checkpointer,
    make_batches: Callable[[], Batches],
    restore: Callable[[], tuple[Any, dict]],
    init: Callable[[], Any],
    after_restore: Callable[[Any], Any] | None = None,
) -> tuple[Any, dict | None, Batches]:
    """(state, meta of the checkpoint resumed from or None for a fresh start, the input pipeline).

    On resume the input pipeline continues where the checkpoint's run was, so the batches after a
    restart are exactly those an uninterrupted run would have seen; a checkpoint without a data state
    (a run converted from another format) starts the data from the beginning. A damaged newest checkpoint
    is set aside by `restore` (vdcore.checkpoint), and the run resumes from the previous one.
    `after_restore` (state -> state) runs on a resumed state before the pipeline is built, so a check that
    refuses the resume (e.g. DRNet's cached pose codes made from other encoders) fails before the pipeline's
    setup work (the code pass over every training clip) rather than after it.
    """
    if checkpoints.latest_step() is None:
        batches = make_batches()  # first, as before: a bad stream setting fails before init's work
        return init(), None, batches
    state, meta = restore()
    checkpoints.reload()  # `restore` may have set damaged steps aside through another Checkpointer
    if after_restore is not None:
        state = after_restore(state)
    batches = make_batches()
    if meta.get("data_state") is not None:  # None: a run converted from elsewhere starts the data afresh
        batches.set_state(meta["data_state"])
    logging.info("resumed %s from step %d (epoch %d)", checkpoints.directory, meta["step"], meta["epoch"])
    return state, meta, batches


@dataclasses.dataclass(frozen=True)
class EpochClock:
    """Epoch bookkeeping of a run of `total_steps` steps, `steps_per_epoch` per epoch."""

    steps_per_epoch: int
    total_steps: int
    save_interval: int
    test_interval: int

    def after(self, step: int) -> tuple[bool, int, bool, bool]:
        """After optimiser step `step` (0-based): (epoch finished, epochs done, save due, test due).

        The last step of the run always saves and (when testing is on) tests.
        """
        done = step + 1
        epoch_done = done % self.steps_per_epoch == 0
        epochs = done // self.steps_per_epoch
        last = done == self.total_steps
        save = (epoch_done and epochs % self.save_interval == 0) or last
        test = self.test_interval > 0 and ((epoch_done and epochs % self.test_interval == 0) or last)
        return epoch_done, epochs, save, test


class StepRate:
    """Steps per second since the previous `rate()` call (or creation)."""

    def __init__(self) -> None:
        self._start, self._steps = time.perf_counter(), 0

    def tick(self) -> None:
        self._steps += 1

    def rate(self) -> float:
        elapsed = time.perf_counter() - self._start
        value = self._steps / elapsed if elapsed > 0 else math.nan
        self._start, self._steps = time.perf_counter(), 0
        return value


def save_or_stop(
    checkpoints: Checkpointer,
    stop: StopRequest,
    save_due: bool,
    step: int,
    state: Any,
    meta: Callable[[], dict],
    summary: dict[str, Any],
) -> bool:
    """After optimiser step `step` (0-based): write checkpoint step + 1 when a save is due or a stop signal
    arrived (`meta()` builds its meta); True when the loop must end (the signal is recorded in `summary`)."""
    if save_due or stop.requested:
        checkpoints.save(step + 1, jax.device_get(state), meta())
    if stop.requested:
        summary["stopped_by"] = stop.requested
        return True
    return False


def host_scalars(metrics: dict[str, jax.Array]) -> dict[str, float]:
    return {k: float(v) for k, v in jax.device_get(metrics).items()}


def write_summary(workdir: str, summary: dict[str, Any]) -> None:
    """<workdir>/summary.json: the run's start and final step, final metrics, skipped steps, saved steps."""
    write_json(os.path.join(workdir, "summary.json"), summary)


def train_both_stages(
    train_and_evaluate: Callable[[ml_collections.ConfigDict, str], dict[str, Any]],
    config: ml_collections.ConfigDict,
    workdir: str,
) -> dict[str, Any]:
    """Stage 1 into <workdir>/stage1, then stage 2 from it into <workdir>/stage2 (not when a stop signal ended
    stage 1: rerunning the command resumes stage 1)."""
    result1 = train_and_evaluate(stage_config(config, 1), os.path.join(workdir, "stage1"))
    if result1.get("stopped_by"):
        return {"stage1": result1, "stopped_by": result1["stopped_by"]}
    second = stage_config(config, 2)
    second.stage1_workdir = os.path.join(workdir, "stage1")
    result2 = train_and_evaluate(second, os.path.join(workdir, "stage2"))
    return {"stage1": result1, "stage2": result2, "stopped_by": result2.get("stopped_by")}
