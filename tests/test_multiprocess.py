"""Two processes of two CPU devices each (jax.distributed over localhost, CPU collectives through gloo) train
like one process with four devices: the same losses, every example of an epoch read once by one process, the
same global batches, and a checkpoint the two wrote resumes in a single process on one device.

The processes run with different PYTHONHASHSEED values, as processes on different hosts do: a step whose
Python code followed hash order (numpyro 0.19's Trace_ELBO adds its sites in `set` order) traced a different
program in each process, XLA paired different gradients in their all-reduce, and about one run in three
trained on wrong sums (tiny VDSM, step-1 loss 141.3 or 1807.7 instead of 102347.9). The loop now refuses to
start when the processes' programs differ (vdcore.loop._check_same_program).

DRNet trains on batches of 8 here (tests/multiprocess_run.py says why): on batches of 4 its first update is so
ill-conditioned that any other summation order, one process with one device against four included, parts the
runs after step 1."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import portpicker
import pytest
from conftest import REPO_ROOT, xla_flags
from tests_helpers import metrics_rows

from vdcore.checkpoint import Checkpointer

LOSS_KEYS = {"vdsm": ("loss",), "drnet": ("loss", "rec_loss", "sim_loss", "disc_bce")}


def _env(model: str, devices: int, hash_seed: str) -> dict[str, str]:
    """DRNet's processes compile at XLA's default level, not the suite's -O0 (tests/conftest.py): its tiny run
    amplifies summation-order differences (above), and with -O0 two processes and one parted by 1.3e-5 (loss, step
    5) and 5.4e-5 (sim_loss, step 6) relative, against less than 1e-5 at the default level."""
    devices_flag = f"--xla_force_host_platform_device_count={devices}"
    flags = xla_flags(devices_flag) if model == "vdsm" else devices_flag
    return {**os.environ, "XLA_FLAGS": flags, "PYTHONHASHSEED": hash_seed}


def _start(model: str, workdir, data_dir: str, index_file, devices: int, *cluster) -> subprocess.Popen:
    hash_seed = str(1 + (int(cluster[2]) if cluster else 2))  # a different one in every process
    env = _env(model, devices, hash_seed)
    command = [sys.executable, "tests/multiprocess_run.py", model, str(workdir), data_dir, str(index_file)]
    command += [str(c) for c in cluster]
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-4000:]


@pytest.mark.parametrize("model", ["vdsm", "drnet"])
def test_two_processes_train_like_one_and_their_checkpoint_resumes_in_one(model, tmp_path, tiny_moving_mnist):
    port = portpicker.pick_unused_port()
    two = [
        _start(model, tmp_path / "two", tiny_moving_mnist, tmp_path / f"read{p}.json", 2, f"localhost:{port}", 2, p)
        for p in range(2)
    ]
    _finish(two)
    _finish([_start(model, tmp_path / "one", tiny_moving_mnist, tmp_path / "read.json", 4)])

    expected, got = metrics_rows(tmp_path / "one"), metrics_rows(tmp_path / "two")
    assert sorted(got) == sorted(expected) == list(range(1, 7))
    for step in range(1, 7):
        for key in LOSS_KEYS[model]:
            np.testing.assert_allclose(got[step][key], expected[step][key], rtol=1e-5, atol=1e-7, err_msg=(step, key))

    # 24 training clips in global batches of 4 (VDSM: the 6 steps are one epoch) or 8 (DRNet: two epochs of 3
    # steps): within an epoch each clip is read once, by one process.
    per_process = [json.loads((tmp_path / f"read{p}.json").read_text()) for p in range(2)]
    one = json.loads((tmp_path / "read.json").read_text())
    batch = len(one[0])
    assert [len(rows) for reads in per_process for rows in reads] == [batch // 2] * 12
    steps_per_epoch = 24 // batch
    for start in range(0, 6, steps_per_epoch):
        read = [i for reads in per_process for rows in reads[start : start + steps_per_epoch] for i in rows]
        assert sorted(read) == list(range(24))
    assert [a + b for a, b in zip(*per_process, strict=True)] == one  # the same global batches

    # The two processes' checkpoint after step 4 resumes in one process on one device.
    resumed = tmp_path / "resumed"
    shutil.copytree(tmp_path / "two", resumed)
    shutil.rmtree(resumed / "checkpoints" / "6")
    assert Checkpointer(resumed / "checkpoints").all_steps()[-1] == 4
    result = subprocess.run(
        [sys.executable, "tests/multiprocess_run.py", model, str(resumed), tiny_moving_mnist, str(tmp_path / "r.json")],
        cwd=REPO_ROOT,
        env=_env(model, 1, "4"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    after = metrics_rows(resumed)
    for step in (5, 6):
        for key in LOSS_KEYS[model]:
            np.testing.assert_allclose(after[step][key], got[step][key], rtol=1e-4, atol=1e-6, err_msg=(step, key))
    assert json.loads((tmp_path / "r.json").read_text()) == one[4:]  # the data goes on where the checkpoint was
