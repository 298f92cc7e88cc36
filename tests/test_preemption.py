"""SIGTERM / SIGINT: a training command finishes its step, writes a checkpoint, exits 0, and the rerun resumes
with the losses an uninterrupted run has."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO_ROOT, load_config_file

from vdcore import preemption
from vdcore.checkpoint import Checkpointer
from vdsm_jax import train as vdsm_train

EPOCHS = 400  # far more steps than the test waits for: the signal always arrives mid-run, between periodic saves
SAVE_INTERVAL = 1000


def _losses(workdir) -> dict[int, float]:
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    return {row["step"]: row["loss"] for row in rows}


def _wait_for_logged_steps(process: subprocess.Popen, metrics_file: str, count: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the run ended before the signal: {process.communicate()}")
        if os.path.isfile(metrics_file) and sum(1 for _ in open(metrics_file)) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"{metrics_file}: fewer than {count} steps logged in {timeout} s")


def test_sigterm_mid_run_checkpoints_exits_0_and_resumes_like_an_uninterrupted_run(tmp_path, tiny_moving_mnist):
    signum = signal.SIGTERM
    workdir = tmp_path / "run"
    overrides = {
        "data_dir": tiny_moving_mnist,
        "model_test_interval": 0,
        "epochs": EPOCHS,
        "model_save_interval": SAVE_INTERVAL,
    }
    command = [sys.executable, "-m", "vdsm_jax.main", "--config", "configs/vdsm/tiny.py:stage1"]
    command += ["--workdir", str(workdir)] + [f"--config.{k}={v}" for k, v in overrides.items()]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_logged_steps(process, str(workdir / "metrics.jsonl"), 3)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-2000:]
    name = signal.Signals(signum).name
    assert f"{name} received: stopping after the current step with a checkpoint" in stderr
    assert "run the same command again to resume" in stderr
    (stopped_at,) = Checkpointer(workdir / "checkpoints").all_steps()
    assert 3 <= stopped_at < EPOCHS

    config = load_config_file("configs/vdsm/tiny.py", "stage1")
    config.update(overrides)
    resumed = vdsm_train.train_and_evaluate(config, str(workdir), stop_after_steps=3)
    assert resumed["start_step"] == stopped_at
    uninterrupted = vdsm_train.train_and_evaluate(config, str(tmp_path / "full"), stop_after_steps=stopped_at + 3)
    assert uninterrupted["start_step"] == 0
    expected, got = _losses(tmp_path / "full"), _losses(workdir)
    for step in range(stopped_at + 1, stopped_at + 4):  # bit for bit: same machine, same threads (README)
        assert got[step] == expected[step], step


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_first_signal_is_recorded_and_the_handlers_are_restored(signum):
    before = signal.getsignal(signum)
    with preemption.stop_on_signals() as stop:
        assert stop.requested is None
        os.kill(os.getpid(), signum)
        assert stop.requested == signal.Signals(signum).name
        assert signal.getsignal(signum) == before  # a second signal acts as usual
    assert signal.getsignal(signum) == before


def test_sigterm_stops_a_judge_with_a_checkpoint_and_the_rerun_finishes(tmp_path, tiny_moving_mnist, monkeypatch):
    from tests_helpers import tiny_judge_config

    from vdeval import judge_train

    real_step, calls = judge_train.train_step, {"n": 0}

    def step_then_signal(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(judge_train, "train_step", step_then_signal)
    workdir = str(tmp_path / "judge")
    stopped = judge_train.train_and_evaluate(tiny_judge_config(tiny_moving_mnist, 40), workdir)
    assert stopped == {"stopped_by": "SIGTERM", "step": 3}
    assert Checkpointer(os.path.join(workdir, "checkpoints")).all_steps() == [3]
    assert not os.path.exists(os.path.join(workdir, "judge.json"))
    monkeypatch.setattr(judge_train, "train_step", real_step)
    report = judge_train.train_and_evaluate(tiny_judge_config(tiny_moving_mnist, 40), workdir)
    assert report["steps"] == 40 and os.path.exists(os.path.join(workdir, "judge.json"))
