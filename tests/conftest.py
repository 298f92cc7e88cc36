"""Shared test fixtures."""

from __future__ import annotations

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent

# XLA:CPU's quickest code generation (LLVM -O0) for the suite and the commands it starts (set in pytest_configure,
# before any backend starts; scripts that import this file do not get it): the suite compiles many tiny programs and
# runs each a few steps, so compilation is most of its time (the init of the tiny VDSM compiles in 2.2 s instead of
# 8.8 s). The HLO passes, and so the programs' results, are the same up to float rounding; benchmarks/ and the
# evaluation command run at XLA's default level.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"


def xla_flags(*extra: str) -> str:
    """The suite's XLA_FLAGS with `extra` appended, for a command that needs more (e.g. fake devices)."""
    return " ".join([os.environ["XLA_FLAGS"], *extra])


def pytest_configure(config):
    """Share compiled XLA programs between tests (and their subprocesses): many compile the same tiny model."""
    if TEST_XLA_FLAGS not in os.environ.get("XLA_FLAGS", ""):  # xdist workers inherit it from the controller
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()
    cache_dir = os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(config.cache.mkdir("jax_compilation_cache")))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    import jax

    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build) -> pathlib.Path:
    """The folder `name`, filled by build(folder) once per test session, whatever the number of xdist workers.

    Each xdist worker is its own process with its own session fixtures, so an expensive fixture (a trained run)
    would be built by both workers; here the first to need it builds it into the session's shared base folder
    while the other waits on a file lock, then both read it. A failed build leaves no marker: the next user
    builds again (and fails with its own error)."""
    import shutil

    import filelock

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the workers' base folders are siblings under the session's
    folder, done = shared / name, shared / f"{name}.built"
    with filelock.FileLock(str(shared / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


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


def _trained_run(tmp_path_factory: pytest.TempPathFactory, model: str, data_dir: str) -> pathlib.Path:
    """Both stages of configs/<model>/tiny.py trained through the CLI, built once per session (`built_once`)."""
    import subprocess
    import sys

    def train(workdir: pathlib.Path) -> None:
        command = [sys.executable, "-m", f"{model}_jax.main", "--config", str(REPO_ROOT / f"configs/{model}/tiny.py")]
        command += ["--workdir", str(workdir), "--config.data_dir", data_dir]
        env = {**os.environ, "JAX_LOG_COMPILES": "1"}  # every compilation logged: see the compile-once tests
        result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, env=env)
        assert result.returncode == 0, result.stderr[-4000:]
        (workdir / COMMAND_LOG).write_text(result.stderr)

    return built_once(tmp_path_factory, f"{model}_run", train)


@pytest.fixture(scope="session")
def trained_vdsm_run(tmp_path_factory, tiny_moving_mnist) -> pathlib.Path:
    """Both VDSM stages of configs/vdsm/tiny.py trained through the CLI (6 steps each, outputs at the end)."""
    return _trained_run(tmp_path_factory, "vdsm", tiny_moving_mnist)


@pytest.fixture(scope="session")
def trained_drnet_run(tmp_path_factory, tiny_moving_mnist) -> pathlib.Path:
    """Both DRNet stages of configs/drnet/tiny.py trained through the CLI (6 steps each, pictures at the end)."""
    return _trained_run(tmp_path_factory, "drnet", tiny_moving_mnist)


@pytest.fixture(scope="session")
def tiny_judge(tmp_path_factory, tiny_moving_mnist) -> str:
    """A judge of moving_mnist/smoke clips (6 frames), trained for 20 steps: weak, but of the right shapes."""
    from tests_helpers import tiny_judge_config

    from vdeval.judge_train import train_and_evaluate

    config = tiny_judge_config(tiny_moving_mnist, 20)
    return str(built_once(tmp_path_factory, "judge", lambda workdir: train_and_evaluate(config, str(workdir))))
