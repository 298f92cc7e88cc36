"""vdcore.loop with a model that compiles in a second: no device-to-host transfer between check points, one
compilation of the step for a whole run, the exact stop after K consecutive non-finite updates, epoch means,
and a `kill -9` during a checkpoint write."""

import dataclasses
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from conftest import COMMAND_LOG, REPO_ROOT
from jax._src.array import ArrayImpl
from tests_helpers import metrics_rows, toy_loop_config, toy_loop_model

from vdcore import loop
from vdcore.checkpoint import Checkpointer
from vdcore.train_state import NonFiniteTrainingError


def test_no_host_transfer_between_check_points_and_one_compilation(tmp_path, tiny_moving_mnist, caplog, monkeypatch):
    """Check points here: the log steps 3, 6, 9 (= epoch ends; one save, after step 9). Host reads are counted
    per step: the loop's fetches, jax.device_get, and every scalar conversion (float(), int(), bool(), .item()
    go through ArrayImpl._value). The transfer guard the loop sets cannot show them on the CPU backend, whose
    arrays already live in host memory."""
    config = toy_loop_config(tiny_moving_mnist, epochs=3, log_every_steps=3, model_save_interval=3)
    workdir = str(tmp_path / "run")
    model = toy_loop_model(config, workdir)
    reads, step = {}, {"now": 0}
    real_value = ArrayImpl._value

    def count():
        reads[step["now"]] = reads.get(step["now"], 0) + 1

    def counted_value(self):
        count()
        return real_value.fget(self)

    def counting(function):
        return lambda *args, **kwargs: (count(), function(*args, **kwargs))[1]

    def batches_counting_steps(num_devices):
        batches = model.make_batches(num_devices)
        real_next = type(batches).__next__

        class Counting(type(batches)):
            def __next__(self):
                step["now"] += 1
                return real_next(self)

        batches.__class__ = Counting
        return batches

    monkeypatch.setattr(ArrayImpl, "_value", property(counted_value))
    monkeypatch.setattr(loop, "fetch", counting(loop.fetch))
    monkeypatch.setattr(jax, "device_get", counting(jax.device_get))
    jax.config.update("jax_log_compiles", True)
    try:
        with caplog.at_level(logging.WARNING):
            summary = loop.run(config, workdir, dataclasses.replace(model, make_batches=batches_counting_steps))
    finally:
        jax.config.update("jax_log_compiles", False)
    assert summary["final_step"] == 9 and summary["checkpoints"] == [9]
    assert sorted(s for s in reads if 1 <= s <= 9) == [3, 6, 9], reads  # steps 1, 2, 4, 5, 7, 8: no read
    compiled = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Compiling jit(_accumulate)")]
    assert len(compiled) == 1, compiled  # 9 steps over 3 epochs: one program
    assert sorted(metrics_rows(tmp_path / "run")) == [3, 6, 9]


def test_k_nonfinite_in_a_row_between_check_points_stop_at_the_next_one_without_saving(tmp_path, tiny_moving_mnist):
    # Saves after steps 3 and 6, logs after step 6 only; steps 4 and 5 are NaN: the 2nd in a row is step 5.
    config = toy_loop_config(tiny_moving_mnist, log_every_steps=6, poison_steps=(4, 5))
    workdir = str(tmp_path / "run")
    with pytest.raises(
        NonFiniteTrainingError, match=r"2 consecutive non-finite updates at step 5.*\(step 3\) is intact"
    ):
        loop.run(config, workdir, toy_loop_model(config, workdir))
    assert Checkpointer(os.path.join(workdir, "checkpoints")).all_steps() == [3]
    # One NaN step between finite ones is skipped and training goes on; epoch means cover the finite steps.
    config = toy_loop_config(tiny_moving_mnist, log_every_steps=1, poison_steps=(2,))
    summary = loop.run(config, str(tmp_path / "once"), toy_loop_model(config, str(tmp_path / "once")))
    rows = metrics_rows(tmp_path / "once")
    assert summary["skipped_steps"] == 1 and rows[6]["skipped_steps"] == 1 and not np.isfinite(rows[2]["loss"])
    assert rows[3]["epoch/loss"] == pytest.approx((rows[1]["loss"] + rows[3]["loss"]) / 2)
    assert rows[6]["epoch/loss"] == pytest.approx((rows[4]["loss"] + rows[5]["loss"] + rows[6]["loss"]) / 3)


KILL_DURING_WRITE = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, "tests")
    from orbax.checkpoint._src.path import atomicity
    from tests_helpers import metrics_rows, toy_loop_config, toy_loop_model
    from vdcore import loop

    data_dir, workdir = sys.argv[1], sys.argv[2]
    real_finalize = atomicity.AtomicRenameTemporaryPath.finalize

    async def finalize_or_die(self, *args, **kwargs):
        if os.path.basename(str(self.get_final())) == "6":  # the second checkpoint: written, not yet committed
            os.kill(os.getpid(), signal.SIGKILL)
        return await real_finalize(self, *args, **kwargs)

    atomicity.AtomicRenameTemporaryPath.finalize = finalize_or_die
    config = toy_loop_config(data_dir)
    loop.run(config, workdir, toy_loop_model(config, workdir))
    """
)


def test_kill_9_during_a_checkpoint_write_resumes_from_the_previous_complete_one(tmp_path, tiny_moving_mnist):
    workdir = str(tmp_path / "run")
    result = subprocess.run(
        [sys.executable, "-c", KILL_DURING_WRITE, tiny_moving_mnist, workdir],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    checkpoints = os.path.join(workdir, "checkpoints")
    assert any("tmp" in name for name in os.listdir(checkpoints))  # the half-committed write is left behind
    assert Checkpointer(checkpoints).all_steps() == [3]

    config = toy_loop_config(tiny_moving_mnist)
    resumed = loop.run(config, workdir, toy_loop_model(config, workdir))
    assert resumed["start_step"] == 3 and resumed["checkpoints"] == [3, 6]
    full = loop.run(config, str(tmp_path / "full"), toy_loop_model(config, str(tmp_path / "full")))
    expected, got = metrics_rows(tmp_path / "full"), metrics_rows(workdir)
    for step in (4, 5, 6):
        assert got[step]["loss"] == expected[step]["loss"], step
    assert full["final_metrics"] == resumed["final_metrics"]


@pytest.mark.parametrize("run", ["trained_vdsm_run", "trained_drnet_run"])
def test_each_real_train_step_compiles_once_per_stage_and_keeps_its_donated_buffers(run, request):
    """Both stages of each model's tiny config through the CLI (several steps, epochs, checkpoints and pictures
    each), every compilation logged: one train-step program per stage, and XLA used every donated buffer."""
    log = (request.getfixturevalue(run) / COMMAND_LOG).read_text()
    compiled = re.findall(r"Compiling jit\((\w+)\) with global shapes", log)
    assert compiled, "the run's log holds no compilation (JAX_LOG_COMPILES not applied?)"
    assert compiled.count("_accumulate") == 2, compiled  # stage 1's step and stage 2's, once each
    assert "donated buffers were not usable" not in log
