"""Shared test fixtures."""

from __future__ import annotations

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


def pytest_configure(config):
    """Share compiled XLA programs between tests (and their subprocesses): many compile the same tiny model."""
    cache_dir = os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(config.cache.mkdir("jax_compilation_cache")))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    import jax

    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


# The stderr of the CLI runs of the trained_* fixtures (with JAX_LOG_COMPILES), kept in their workdirs.
COMMAND_LOG = "command_stderr.log"

SHARED_LPC = REPO_ROOT.parent / "shared" / "data" / "lpc"


@pytest.fixture(scope="session")
def shared_lpc_dir() -> pathlib.Path:
    """The LPC layer sheets beside the checkout (present in CI)."""
    if not SHARED_LPC.is_dir():
        pytest.skip(f"LPC sheets not found at {SHARED_LPC}")
    return SHARED_LPC


@pytest.fixture(autouse=True)
def _quiet_tfds(monkeypatch):
    monkeypatch.setenv("TFDS_DISABLE_PROGRESS_BAR", os.environ.get("TFDS_DISABLE_PROGRESS_BAR", "1"))


@pytest.fixture(scope="session")
def tiny_moving_mnist(tmp_path_factory) -> str:
    """A data_dir holding moving_mnist/smoke: 1 digit, 64 px, 6 frames, 24 train / 8 test clips."""
    from data_prep.build import build

    data_dir = tmp_path_factory.mktemp("data")
    build("moving_mnist", data_dir, "smoke")
    return str(data_dir)


def load_config_file(path: str, arg: str | None = None):
    """The ConfigDict of a config file, as `--config path[:arg]` would give it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("config_under_test", REPO_ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg) if arg is not None else module.get_config()


@pytest.fixture(scope="session")
def trained_vdsm_run(tmp_path_factory, tiny_moving_mnist) -> pathlib.Path:
    """Both VDSM stages of configs/vdsm/tiny.py trained through the CLI (6 steps each, outputs at the end)."""
    import subprocess
    import sys

    workdir = tmp_path_factory.mktemp("vdsm_run")
    command = [
        sys.executable,
        "-m",
        "vdsm_jax.main",
        "--config",
        str(REPO_ROOT / "configs/vdsm/tiny.py"),
        "--workdir",
        str(workdir),
        "--config.data_dir",
        tiny_moving_mnist,
    ]
    env = {**os.environ, "JAX_LOG_COMPILES": "1"}  # every compilation logged: see the compile-once tests
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    (workdir / COMMAND_LOG).write_text(result.stderr)
    return workdir


@pytest.fixture(scope="session")
def trained_drnet_run(tmp_path_factory, tiny_moving_mnist) -> pathlib.Path:
    """Both DRNet stages of configs/drnet/tiny.py trained through the CLI (6 steps each, pictures at the end)."""
    import subprocess
    import sys

    workdir = tmp_path_factory.mktemp("drnet_run")
    command = [
        sys.executable,
        "-m",
        "drnet_jax.main",
        "--config",
        str(REPO_ROOT / "configs/drnet/tiny.py"),
        "--workdir",
        str(workdir),
        "--config.data_dir",
        tiny_moving_mnist,
    ]
    env = {**os.environ, "JAX_LOG_COMPILES": "1"}  # every compilation logged: see the compile-once tests
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    (workdir / COMMAND_LOG).write_text(result.stderr)
    return workdir


@pytest.fixture(scope="session")
def tiny_judge(tmp_path_factory, tiny_moving_mnist) -> str:
    """A judge of moving_mnist/smoke clips (6 frames), trained for 20 steps: weak, but of the right shapes."""
    from tests_helpers import tiny_judge_config

    from vdeval.judge_train import train_and_evaluate

    config = tiny_judge_config(tiny_moving_mnist, 20)
    workdir = str(tmp_path_factory.mktemp("judge"))
    train_and_evaluate(config, workdir)
    return workdir
