"""The shared command line of both training packages (absl + ml_collections config files).

    python -m <package>.main --config configs/<model>/<name>.py[:stage1|stage2|both] --workdir DIR [--config.X V]
        [--distributed | --coordinator_address HOST:PORT --num_processes N --process_id I]

A config whose `stage` is 0 ("both") trains stage 1 into <workdir>/stage1 and then stage 2 from it into
<workdir>/stage2; a run resumes from its newest checkpoint.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import json
import os
import sys
import types
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import jax
import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from data_prep.builders import get_builder
from data_prep.errors import INPUT_ERRORS as DATA_INPUT_ERRORS
from vdcore import distributed
from vdcore.checkpoint import (
    CheckpointMismatchError,
    CheckpointNotFoundError,
    DamagedCheckpointError,
    RunExistsError,
    open_run_checkpoints,
    run_checkpoint_dir,
    workdir_problem,
)
from vdcore.host_memory import keep_freed_memory
from vdcore.run_config import ConfigValueError, stage_config
from vdcore.torch_checkpoint import TorchCheckpointError

TrainFn = Callable[[ml_collections.ConfigDict, str], dict[str, Any]]
CheckFn = Callable[[ml_collections.ConfigDict], None]
MainFn = Callable[[list[str]], None]

# The errors that mean a command's input is wrong (a dataset, file, folder, checkpoint or name), not the code: the
# commands print their message, which names the file / field and what was expected, as their last line.
INPUT_ERRORS: tuple[type[Exception], ...] = (
    *DATA_INPUT_ERRORS,
    CheckpointNotFoundError,
    CheckpointMismatchError,
    DamagedCheckpointError,
    RunExistsError,
    TorchCheckpointError,
    ConfigValueError,
)


def define_flags(config_help: str) -> None:
    """--config (a config file, overridable field by field) and --workdir, both required."""
    config_flags.DEFINE_config_file("config", None, config_help, lock_config=True)
    flags.DEFINE_string("workdir", None, "Directory for checkpoints, pictures, metrics and logs.")
    flags.mark_flags_as_required(["config", "workdir"])
    flags.DEFINE_bool(
        "keep_freed_memory",
        True,
        "Keep freed host memory in the process (glibc mallopt; see vdcore/host_memory.py): XLA:CPU's per-step "
        "buffers then stop costing page faults (~25% of a VDSM step on 2 CPU cores). --nokeep_freed_memory "
        "leaves glibc's defaults.",
    )
    flags.DEFINE_bool(
        "distributed",
        False,
        "Join a multi-process run (jax.distributed): on TPU slices, SLURM, Open MPI and Kubernetes the coordinator, "
        "process count and id are found automatically; elsewhere give the three flags below (or JAX_COORDINATOR_ADDRESS, "
        "JAX_NUM_PROCESSES, JAX_PROCESS_ID). Giving any of them implies --distributed.",
    )
    flags.DEFINE_string("coordinator_address", None, "host:port of process 0's coordinator (multi-process runs).")
    flags.DEFINE_integer("num_processes", None, "Number of processes of a multi-process run.", lower_bound=1)
    flags.DEFINE_integer(
        "process_id", None, "This process's id in a multi-process run, 0 .. num_processes - 1.", lower_bound=0
    )


def unknown_field(config: ml_collections.ConfigDict, dotted_name: str, config_file: str) -> str | None:
    """None when `dotted_name` (e.g. "stage2.lr") names a field of `config`; else a message naming the
    unknown part, the config file, and the closest valid names at that level (or all of them)."""
    node: Any = config
    walked: list[str] = []
    for part in dotted_name.split("."):
        if not isinstance(node, ml_collections.ConfigDict):
            return f"--config.{dotted_name}: {'.'.join(walked)} of {config_file} is a value, not a block of fields"
        if part not in node:
            names = sorted(node.keys())
            close = difflib.get_close_matches(part, names, n=3, cutoff=0.5)
            where = f"config.{'.'.join(walked)}" if walked else "the config"
            hint = f"closest: {', '.join(close)}" if close else f"its fields: {', '.join(names)}"
            return f"--config.{dotted_name}: {where} of {config_file} has no field {part!r} ({hint})"
        node = node[part]
        walked.append(part)
    return None


def _override_names(argv: Sequence[str]) -> list[str]:
    """The dotted field names of the --config.X overrides in argv (both "--config.X V" and "--config.X=V")."""
    return [arg[len("--config.") :].split("=", 1)[0] for arg in argv if arg.startswith("--config.")]


def _flag_error(message: str) -> NoReturn:
    """Exit with status 1 after one line, as absl prints a flag error."""
    sys.stderr.write(f"FATAL Flags parsing error: {message}\n")
    sys.exit(1)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with the --config file loaded on its own first: a missing file or an argument its
    get_config refuses is one flag error naming both (ml_collections defers the first to a traceback at first use
    and lets the second escape as a bare KeyError), and so is an unknown --config.X override, with the closest
    fields (ml_collections raises a bare AttributeError or KeyError of the key)."""
    config_arg = _flag_value(argv, "--config")
    config_file = config_arg.partition(":")[0] if config_arg is not None else None
    config = None if config_arg is None else _load_config_flag(config_arg)
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:  # a value of the wrong type, a missing required flag: as absl's own parser says
        _flag_error(f"{error}\nPass --helpshort or --helpfull to see help on flags.")
    except (AttributeError, KeyError):
        if config is None:
            raise
        messages = [m for name in _override_names(argv[1:]) if (m := unknown_field(config, name, config_file))]
        if not messages:
            raise
        _flag_error("; ".join(messages))


def _load_config_flag(config_arg: str) -> ml_collections.ConfigDict:
    """The config of `--config FILE[:ARG]`; a flag error naming the file when it is missing or refuses ARG."""
    config_file, _, arg = config_arg.partition(":")
    if not os.path.isfile(config_file):
        _flag_error(
            f"--config {config_arg}: no config file {config_file} (expected a Python file defining get_config(), "
            "e.g. configs/vdsm/tiny.py)"
        )
    module = _config_module(config_file)
    try:
        return module.get_config(arg) if arg else module.get_config()
    except (KeyError, ValueError) as error:
        if not arg:
            raise
        stages = getattr(module, "STAGES", None)  # the shipped configs' get_config(stage) looks its arg up there
        known = isinstance(error, KeyError) and isinstance(stages, dict)
        expected = f"; expected {config_file}:{'|'.join(stages)}" if known else ""
        _flag_error(f"--config {config_arg}: get_config of {config_file} refuses {arg!r} ({error!r}){expected}")


def _flag_value(argv: Sequence[str], name: str) -> str | None:
    """The value of flag `name` in argv ("--name V" or "--name=V"), or None."""
    for index, arg in enumerate(argv):
        if arg.startswith(name + "="):
            return arg[len(name) + 1 :]
        if arg == name and index + 1 < len(argv):
            return argv[index + 1]
    return None


def _config_module(config_file: str) -> types.ModuleType:
    """A config file, run as a module of its own (as ml_collections' config flag runs it)."""
    spec = importlib.util.spec_from_file_location("_config_file_for_override_check", config_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_config_file(config_file: str, config_arg: str) -> ml_collections.ConfigDict:
    """get_config([config_arg]) of a config file, as ml_collections' config flag loads it."""
    module = _config_module(config_file)
    return module.get_config(config_arg) if config_arg else module.get_config()


def program_name() -> str:
    """How the running command was started: 'python -m vdsm_jax.main' (or the script's name)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return f"python -m {spec.name}" if spec is not None and spec.name else os.path.basename(sys.argv[0])


def fail(message: str) -> NoReturn:
    """End the command with exit status 1 and `message` as its one last line: for input the user can correct,
    where a traceback would only bury the message."""
    sys.stderr.write(f"{program_name()}: error: {message}\n")
    sys.exit(1)


def report_input_errors(main: MainFn) -> MainFn:
    """`main`, with the errors of bad input (INPUT_ERRORS) reported by `fail`; any other error (a bug) keeps its
    traceback."""

    @functools.wraps(main)
    def checked(argv: list[str]) -> None:
        try:
            main(argv)
        except INPUT_ERRORS as error:
            fail(str(error))

    return checked


def check_run(config: ml_collections.ConfigDict, workdir: str, check: CheckFn | None) -> None:
    """`fail` (or raise one of INPUT_ERRORS) before anything is built, where the training command could not
    finish: a config value that `check` refuses in a stage the command trains (a 'both' run's stage 2 included), an
    unknown dataset or dataset config, a data_dir or workdir that is a file, a stage-2 run whose
    config.stage1_workdir holds no checkpoint."""
    if config.stage not in (0, 1, 2):
        fail(f"config.stage must be 0 (both), 1 or 2, got {config.stage!r}")
    for stage in (1, 2) if config.stage == 0 else (config.stage,):
        try:
            resolved = stage_config(config, stage)
            if check is not None:
                check(resolved)
        except ValueError as error:
            fail(f"{error} (stage 2: config.stage2 applied)" if stage == 2 else str(error))
    get_builder(config.dataset, config.data_dir, config.dataset_config)  # names the unknown name or the file
    if problem := workdir_problem(workdir):
        fail(f"--workdir {problem}")
    if config.stage == 2:
        _check_stage1_workdir(config.get("stage1_workdir", ""))


def _check_stage1_workdir(path: str) -> None:
    """`fail` unless `path` holds a checkpoint of a stage-1 run (stage 2 would fail at its first step otherwise)."""
    if not path:
        fail("config.stage1_workdir is empty; stage 2 starts from a trained stage-1 run: give its workdir")
    try:
        checkpoints = open_run_checkpoints(path, "stage-1")
    except CheckpointNotFoundError as error:
        fail(f"config.stage1_workdir: {error}")
    if not checkpoints.all_steps():
        fail(f"config.stage1_workdir: no checkpoint in {run_checkpoint_dir(path)}; expected a trained stage-1 run")
    stage = checkpoints.restore_meta().get("stage")
    if stage != 1:
        fail(f"config.stage1_workdir: {path} holds a stage-{stage} run; expected a stage-1 run")


def run(
    train_and_evaluate: TrainFn, train_both_stages: TrainFn, after: TrainFn | None = None, check: CheckFn | None = None
) -> None:
    """Parse the flags and train the config's stage (or both); logs the run summary as JSON; then
    `after(config, workdir)` when given (the models' evaluation, switched by config.evaluation). A run that a
    SIGTERM / SIGINT stopped (vdcore.preemption) has written its checkpoint and exits 0 without `after`, and so
    does a multi-process run (the evaluation runs in one process).
    `check(stage config)`: the model's config check, run on every stage before anything is built (check_run)."""

    def main(argv: list[str]) -> None:
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        if flags.FLAGS.keep_freed_memory:
            # First of all: threads pick their malloc arena at their first allocation, and check_run's dataset
            # builder starts some (placed after it, the VDSM quickstart's loop ran 17 % slower).
            keep_freed_memory()
        config, workdir = flags.FLAGS.config, flags.FLAGS.workdir
        check_run(config, workdir, check)
        distributed.join(
            flags.FLAGS.distributed, flags.FLAGS.coordinator_address, flags.FLAGS.num_processes, flags.FLAGS.process_id
        )
        train = train_both_stages if config.stage == 0 else train_and_evaluate
        summary = train(config, workdir)
        if summary.get("stopped_by"):
            logging.warning(
                "stopped by %s with a checkpoint in %s; run the same command again to resume",
                summary["stopped_by"],
                workdir,
            )
            return
        logging.info("finished: %s", json.dumps(summary, default=str))
        if after is not None and jax.process_count() > 1:
            logging.info("multi-process run: evaluate it afterwards in one process (the package's evaluate command)")
        elif after is not None:
            after(config, workdir)

    app.run(report_input_errors(main), flags_parser=parse_flags)
