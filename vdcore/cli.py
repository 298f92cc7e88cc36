"""The shared command line of both training packages (absl + ml_collections config files).

    python -m <package>.main --config configs/<model>/<name>.py[:stage1|stage2|both] --workdir DIR [--config.X V]
        [--distributed | --coordinator_address HOST:PORT --num_processes N --process_id I]

A config whose `stage` is 0 ("both") trains stage 1 into <workdir>/stage1 and then stage 2 from it into
<workdir>/stage2; a run resumes from its newest checkpoint.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import jax
import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from vdcore import distributed
from vdcore.host_memory import keep_freed_memory

TrainFn = Callable[[ml_collections.ConfigDict, str], dict[str, Any]]


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


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with an unknown --config.X override reported by name (ml_collections raises a bare
    AttributeError or KeyError of the key): the config file is loaded on its own, each override is looked up
    in it, and the unknown ones are printed as absl prints a flag error (exit status 1)."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:  # a value of the wrong type, a missing required flag: as absl's own parser says
        sys.stderr.write(f"FATAL Flags parsing error: {error}\nPass --helpshort or --helpfull to see help on flags.\n")
        sys.exit(1)
    except (AttributeError, KeyError):
        config_arg = _flag_value(argv, "--config")
        if config_arg is None:
            raise
        config_file, _, stage = config_arg.partition(":")
        config = load_config_file(config_file, stage)
        messages = [m for name in _override_names(argv[1:]) if (m := unknown_field(config, name, config_file))]
        if not messages:
            raise
        sys.stderr.write("FATAL Flags parsing error: " + "; ".join(messages) + "\n")
        sys.exit(1)


def _flag_value(argv: Sequence[str], name: str) -> str | None:
    """The value of flag `name` in argv ("--name V" or "--name=V"), or None."""
    for index, arg in enumerate(argv):
        if arg.startswith(name + "="):
            return arg[len(name) + 1 :]
        if arg == name and index + 1 < len(argv):
            return argv[index + 1]
    return None


def load_config_file(config_file: str, config_arg: str) -> ml_collections.ConfigDict:
    """get_config([config_arg]) of a config file, as ml_collections' config flag loads it."""
    spec = importlib.util.spec_from_file_location("_config_file_for_override_check", config_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(config_arg) if config_arg else module.get_config()


def run(train_and_evaluate: TrainFn, train_both_stages: TrainFn, after: TrainFn | None = None) -> None:
    """Parse the flags and train the config's stage (or both); logs the run summary as JSON; then
    `after(config, workdir)` when given (the models' evaluation, switched by config.evaluation). A run that a
    SIGTERM / SIGINT stopped (vdcore.preemption) has written its checkpoint and exits 0 without `after`, and so
    does a multi-process run (the evaluation runs in one process)."""

    def main(argv: list[str]) -> None:
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        if flags.FLAGS.keep_freed_memory:
            keep_freed_memory()  # before the first JAX computation: threads pick their malloc arena then
        distributed.join(
            flags.FLAGS.distributed, flags.FLAGS.coordinator_address, flags.FLAGS.num_processes, flags.FLAGS.process_id
        )
        config, workdir = flags.FLAGS.config, flags.FLAGS.workdir
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

    app.run(main, flags_parser=parse_flags)
