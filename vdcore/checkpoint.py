"""Checkpoints for both models: orbax, atomic, keep-last-N, automatic resume.

A checkpoint at step S is the folder `<directory>/<S>/` holding `state` (any
pytree of arrays: parameters, optimiser state, step, RNG key data, counters) and
`meta` (JSON: the run's config and anything else a reader needs to rebuild the
model without the training code). orbax writes into a temporary folder and
renames it when complete, so an interrupted save never leaves a checkpoint that
looks valid; the previous ones stay intact.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

CHECKPOINT_SUBDIR = "checkpoints"  # a run's checkpoints live in <workdir>/checkpoints/


class CheckpointNotFoundError(FileNotFoundError):
    pass


def run_checkpoint_dir(path: str | os.PathLike) -> str:
    """A run's workdir or its checkpoints folder → the checkpoints folder."""
    path = os.fspath(path)
    candidate = os.path.join(path, CHECKPOINT_SUBDIR)
    return candidate if os.path.isdir(candidate) else path


def open_run_checkpoints(path: str | os.PathLike, model: str) -> Checkpointer:
    """Read-only access to the checkpoints of a `model` run (e.g. 'VDSM'), given its workdir or checkpoints folder."""
    directory = run_checkpoint_dir(path)
    if not os.path.isdir(directory):
        raise CheckpointNotFoundError(f"no {model} run or checkpoints at {path}")
    return Checkpointer(directory, max_to_keep=None, create=False)


def read_run_meta(path: str | os.PathLike, meta_format: str, model: str, step: int | None = None) -> dict:
    """The JSON meta of a checkpoint (newest unless `step`); ValueError unless its 'format' is `meta_format`."""
    meta = open_run_checkpoints(path, model).restore_meta(step)
    if meta.get("format") != meta_format:
        package = meta_format.split(".", 1)[0]
        raise ValueError(f"{path}: not a {package} checkpoint (meta format {meta.get('format')!r})")
    return meta


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

    def __init__(self, directory: str | os.PathLike, max_to_keep: int | None = 3, create: bool = True):
        self.directory = os.path.abspath(os.fspath(directory))
        if not create and not os.path.isdir(self.directory):
            raise CheckpointNotFoundError(f"no checkpoint directory at {self.directory}")
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create, enable_async_checkpointing=False)
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
        """Write checkpoint `step` and wait until it is committed to disk."""
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        self._manager.save(int(step), args=args, force=True)
        self._manager.wait_until_finished()

    def _resolve(self, step: int | None) -> int:
        step = self.latest_step() if step is None else int(step)
        if step is None:
            raise CheckpointNotFoundError(f"no checkpoint in {self.directory}")
        if step not in self.all_steps():
            raise CheckpointNotFoundError(f"no checkpoint for step {step} in {self.directory}; have {self.all_steps()}")
        return step

    def restore_meta(self, step: int | None = None) -> dict:
        step = self._resolve(step)
        return self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def restore(self, target: Any, step: int | None = None) -> tuple[Any, dict]:
        """Restore into the structure, shapes and dtypes of `target` (arrays or ShapeDtypeStructs).

        Raises ValueError naming the mismatching leaves if the saved state has other shapes.
        """
        step = self._resolve(step)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        self._check_compatible(step, abstract)
        restored = self._manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
        )
        return restored["state"], restored["meta"]

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
            raise ValueError(
                f"checkpoint {self.directory}/{step} does not match the model:\n  " + "\n  ".join(problems)
            )

    def close(self) -> None:
        self._manager.close()


def save_new_run(workdir: str | os.PathLike, step: int, state: Any, meta: dict, max_to_keep: int | None) -> str:
    """Write `state` as the first checkpoint of a new run in `workdir` (e.g. one converted from another format).

    Refuses a workdir that already holds checkpoints: training would resume from the newest one instead, mixing
    two runs. Returns the checkpoint directory.
    """
    directory = os.path.join(os.fspath(workdir), CHECKPOINT_SUBDIR)
    if os.path.isdir(directory) and Checkpointer(directory, max_to_keep=None, create=False).all_steps():
        raise ValueError(f"{workdir} already holds checkpoints; write the new run into an empty workdir")
    checkpoints = Checkpointer(directory, max_to_keep=max_to_keep)
    checkpoints.save(step, state, meta)
    checkpoints.close()
    return directory
