"""Checkpoints for both models: orbax, atomic, keep-last-N, automatic resume.

A checkpoint at step S is the folder `<directory>/<S>/` holding `state` (any
pytree of arrays: parameters, optimiser state, step, RNG key data, counters) and
`meta` (JSON: the run's config and anything else a reader needs to rebuild the
model without the training code). orbax writes into a temporary folder and
renames it when complete, so an interrupted save (a crash, `kill -9`) never leaves a
checkpoint that looks valid; the previous ones stay intact, and the next start ignores
the temporary folder. With `asynchronous=True` a save returns once the device arrays are
copied to host memory and the files are written by a background thread, while training
goes on; the next save, `wait_until_finished` and `close` wait for it. With several
processes every process calls `save` and `restore` (collectively); each writes its share.

A checkpoint damaged after it was committed (a truncated array file, an emptied `_METADATA`, a cut JSON meta)
is skipped when the newest is restored: it is moved aside into `<directory>_damaged/` (never deleted), the
reason is logged with its path, and the previous checkpoint is restored instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging

CHECKPOINT_SUBDIR = "checkpoints"  # a run's checkpoints live in <workdir>/checkpoints/
# What loads a checkpoint, by the package its meta format names (so a file given to the wrong loader says whose
# it is).
LOADERS = {
    "vdsm_jax": "vdsm_jax.VDSM.from_checkpoint",
    "drnet_jax": "drnet_jax.DRNet.from_checkpoint",
    "vdeval": "vdeval.trained_judge.TrainedJudge.from_workdir",
}


class CheckpointNotFoundError(FileNotFoundError):
    pass


class CheckpointMismatchError(ValueError):
    """The checkpoint is intact but was written for other shapes or keys, or by another model (a config or path
    problem, not damage)."""


class RunExistsError(ValueError):
    """A new run (e.g. a converted checkpoint) was to be written into a workdir that already holds checkpoints, or
    that is a file."""


class DamagedCheckpointError(RuntimeError):
    """No checkpoint of a directory restores completely."""


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:300] if text else ''}"


def workdir_problem(workdir: str | os.PathLike) -> str | None:
    """What keeps `workdir` from holding a run (it exists as a file), or None: a missing one is created."""
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        return f"{os.fspath(workdir)} is a file; expected a folder for the run (created if missing)"
    return None


def run_checkpoint_dir(path: str | os.PathLike) -> str:
    """A run's workdir or its checkpoints folder → the checkpoints folder."""
    path = os.fspath(path)
    candidate = os.path.join(path, CHECKPOINT_SUBDIR)
    return candidate if os.path.isdir(candidate) else path


def open_run_checkpoints(path: str | os.PathLike, model: str) -> Checkpointer:
    """Read-only access to the checkpoints of a `model` run (e.g. 'VDSM'), given its workdir or checkpoints folder."""
    directory = run_checkpoint_dir(path)
    if not os.path.isdir(directory):
        found = "a file" if os.path.exists(directory) else "nothing"
        raise CheckpointNotFoundError(
            f"no {model} run or checkpoints at {path}: expected a run's workdir (holding {CHECKPOINT_SUBDIR}/) or its "
            f"{CHECKPOINT_SUBDIR} folder, found {found}"
        )
    return Checkpointer(directory, max_to_keep=None, create=False)


def read_run_meta(path: str | os.PathLike, meta_format: str, model: str, step: int | None = None) -> dict:
    """The JSON meta of a checkpoint (newest unless `step`); ValueError unless its 'format' is `meta_format`."""
    meta = open_run_checkpoints(path, model).restore_meta(step)
    check_meta_format(path, meta, meta_format)
    return meta


def check_meta_format(path: str | os.PathLike, meta: dict, meta_format: str, kind: str = "") -> None:
    """CheckpointMismatchError naming the package whose checkpoint `path` holds (and its loader) unless the
    meta's 'format' is `meta_format`; `kind` names what was expected (default: meta_format's package)."""
    if meta.get("format") != meta_format:
        package = kind or meta_format.split(".", 1)[0]
        found = str(meta.get("format", ""))
        loader = LOADERS.get(found.split(".", 1)[0])
        hint = f": it is a {found.split('.', 1)[0]} checkpoint, which loads with {loader}" if loader else ""
        raise CheckpointMismatchError(f"{path}: not a {package} checkpoint (meta format {found!r}){hint}")


def _path_name(path: tuple) -> str:
    """'params/dec/EW1' for a pytree path, whether its nodes are dicts, dataclass fields or sequences."""
    parts = []
    for entry in path:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                parts.append(str(getattr(entry, attr)))
                break
        else:
            parts.append(str(entry))
    return "/".join(parts)


class Checkpointer:
    """Save and restore (state pytree, JSON metadata) pairs under one directory."""

    def __init__(
        self,
        directory: str | os.PathLike,
        max_to_keep: int | None = 3,
        create: bool = True,
        asynchronous: bool = False,
        keep_period: int | None = None,
    ):
        """max_to_keep: the newest checkpoints kept (None: all); keep_period: steps; checkpoints at multiples of it
        are kept besides those (None: none), e.g. for evaluating a run's accuracy over its training time."""
        self.directory = os.path.abspath(os.fspath(directory))
        if not create and not os.path.isdir(self.directory):
            raise CheckpointNotFoundError(f"no checkpoint directory at {self.directory}")
        self.asynchronous = asynchronous
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            keep_period=keep_period,
            create=create,
            enable_async_checkpointing=asynchronous,
        )
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=options,
            item_names=("state", "meta"),
            item_handlers={"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()},
        )

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any, meta: dict) -> None:
        """Write checkpoint `step` (device or host arrays); unless asynchronous, wait until it is committed."""
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        self._manager.save(int(step), args=args, force=True)
        if not self.asynchronous:
            self._manager.wait_until_finished()

    def wait_until_finished(self) -> None:
        """Block until every started save is committed."""
        self._manager.wait_until_finished()

    def _resolve(self, step: int | None) -> int:
        step = self.latest_step() if step is None else int(step)
        if step is None:
            entries = sorted(os.listdir(self.directory))[:10] if os.path.isdir(self.directory) else []
            raise CheckpointNotFoundError(
                f"no checkpoint in {self.directory}: expected folders named by their step (as training writes them), "
                f"found {entries or 'nothing'}"
            )
        if step not in self.all_steps():
            raise CheckpointNotFoundError(f"no checkpoint for step {step} in {self.directory}; have {self.all_steps()}")
        return step

    def restore_meta(self, step: int | None = None) -> dict:
        """The JSON meta of checkpoint `step` (None: of the newest that restores completely)."""

        def read(at: int) -> dict:
            return self._manager.restore(at, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

        return self._read(read, step)

    def restore(
        self, target: Any, step: int | None = None, sharding: jax.sharding.Sharding | None = None
    ) -> tuple[Any, dict]:
        """Restore into the structure, shapes and dtypes of `target` (arrays or ShapeDtypeStructs), every array
        laid out as `sharding` when given (e.g. replicated over a multi-process mesh).

        step None: the newest checkpoint that restores completely; damaged newer ones are set aside (see the
        module docstring). A damaged checkpoint raises DamagedCheckpointError naming its path (for step None:
        when none restores, listing them all); an intact one of other shapes raises CheckpointMismatchError
        naming the mismatching leaves.
        """
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        if sharding is not None:
            abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), abstract)
        return self._read(lambda at: self._restore_step(abstract, at), step)

    def _read(self, read: Callable[[int], Any], step: int | None) -> Any:
        """`read(step)`, or for step None `read` of the newest step it succeeds on, damaged newer ones set aside."""
        if step is not None:
            return self._read_step(read, self._resolve(step))
        self._resolve(None)
        damaged = []
        for candidate in reversed(self.all_steps()):
            try:
                result = self._read_step(read, candidate)
            except DamagedCheckpointError as error:
                damaged.append(f"{error} -> {self._set_aside(candidate, error)}")
                continue
            if damaged:
                logging.warning("restored step %d of %s", candidate, self.directory)
            return result
        raise DamagedCheckpointError(
            f"no checkpoint in {self.directory} restores completely:\n  " + "\n  ".join(damaged)
        )

    def _read_step(self, read: Callable[[int], Any], step: int) -> Any:
        try:
            return read(step)
        except CheckpointMismatchError:
            raise
        except Exception as error:  # noqa: BLE001 - orbax, tensorstore and json raise many types on damaged files
            raise DamagedCheckpointError(f"{self.directory}/{step}: {_first_line(error)}") from error

    def _restore_step(self, abstract: Any, step: int) -> tuple[Any, dict]:
        self._check_compatible(step, abstract)
        restored = self._manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
        )
        return restored["state"], restored["meta"]

    def _set_aside(self, step: int, error: BaseException) -> str:
        """Move damaged checkpoint `step` into <directory>_damaged/ (never deleted); returns where it went.

        With several processes only process 0 moves it; the others skip it as well."""
        source = os.path.join(self.directory, str(step))
        if jax.process_index() != 0:
            logging.warning("checkpoint %s is damaged (%s); process 0 moves it aside", source, error)
            return "moved aside by process 0"
        aside_dir = f"{self.directory}_damaged"
        target, suffix = os.path.join(aside_dir, str(step)), 1
        while os.path.exists(target):
            target, suffix = os.path.join(aside_dir, f"{step}.{suffix}"), suffix + 1
        try:
            os.makedirs(aside_dir, exist_ok=True)
            os.replace(source, target)
        except OSError as move_error:
            logging.warning("checkpoint %s is damaged (%s) and could not be moved aside: %s", source, error, move_error)
            return f"left in place ({move_error})"
        self.reload()
        logging.warning("checkpoint %s is damaged (%s); moved to %s", source, error, target)
        return f"moved to {target}"

    def reload(self) -> None:
        """Re-read which steps exist (after another Checkpointer on the same directory moved one aside)."""
        self._manager.reload()

    def saved_shapes(self, step: int | None = None) -> dict[str, tuple[int, ...]]:
        """Shapes of the saved state's leaves, keyed by their pytree path."""
        metadata = self._manager.item_metadata(self._resolve(step))["state"]
        tree = getattr(metadata, "tree", metadata)
        return {_path_name(p): tuple(leaf.shape) for p, leaf in jax.tree_util.tree_leaves_with_path(tree)}

    def _check_compatible(self, step: int, abstract: Any) -> None:
        saved = self.saved_shapes(step)
        wanted = {_path_name(p): tuple(leaf.shape) for p, leaf in jax.tree_util.tree_leaves_with_path(abstract)}
        problems = [f"missing in checkpoint: {k} {wanted[k]}" for k in sorted(set(wanted) - set(saved))]
        problems += [f"unexpected in checkpoint: {k} {saved[k]}" for k in sorted(set(saved) - set(wanted))]
        problems += [
            f"{k}: saved {saved[k]}, expected {wanted[k]}"
            for k in sorted(set(saved) & set(wanted))
            if saved[k] != wanted[k]
        ]
        if problems:
            raise CheckpointMismatchError(
                f"checkpoint {self.directory}/{step} does not match the model:\n  " + "\n  ".join(problems)
            )

    def close(self) -> None:
        self._manager.close()


def save_new_run(workdir: str | os.PathLike, step: int, state: Any, meta: dict, max_to_keep: int | None) -> str:
    """Write `state` as the first checkpoint of a new run in `workdir` (e.g. one converted from another format).

    Refuses a workdir that already holds checkpoints: training would resume from the newest one instead, mixing
    two runs. Returns the checkpoint directory.
    """
    if problem := workdir_problem(workdir):
        raise RunExistsError(problem)
    directory = os.path.join(os.fspath(workdir), CHECKPOINT_SUBDIR)
    if os.path.isdir(directory) and Checkpointer(directory, max_to_keep=None, create=False).all_steps():
        raise RunExistsError(f"{workdir} already holds checkpoints; write the new run into an empty workdir")
    checkpoints = Checkpointer(directory, max_to_keep=max_to_keep)
    checkpoints.save(step, state, meta)
    checkpoints.close()
    return directory
