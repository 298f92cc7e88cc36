"""A checkpoint damaged after it was committed: resume falls back to the previous one, the damaged one is moved
aside (never deleted), and when nothing restores the error lists every step and what is wrong with it."""

import glob
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config_file

from vdcore.checkpoint import Checkpointer, CheckpointMismatchError, DamagedCheckpointError
from vdsm_jax import train as vdsm_train


def _truncate_largest_array_file(step_dir: str) -> None:
    files = sorted(glob.glob(os.path.join(step_dir, "state", "ocdbt.process_0", "d", "*")), key=os.path.getsize)
    with open(files[-1], "r+b") as f:
        f.truncate(os.path.getsize(files[-1]) // 2)


def _empty(path: str) -> None:
    open(path, "w").close()


def _cut(path: str) -> None:
    text = open(path).read()
    with open(path, "w") as f:
        f.write(text[: len(text) // 2])


DAMAGES = {
    "truncated array file": _truncate_largest_array_file,
    "emptied state _METADATA": lambda d: _empty(os.path.join(d, "state", "_METADATA")),
    "cut state _METADATA": lambda d: _cut(os.path.join(d, "state", "_METADATA")),
    "cut JSON meta": lambda d: _cut(os.path.join(d, "meta", "metadata")),
    "emptied OCDBT manifest": lambda d: _empty(os.path.join(d, "state", "manifest.ocdbt")),
}


def _state(seed: int) -> dict:
    return {"w": jnp.asarray(np.random.default_rng(seed).random((64, 48), np.float32)), "step": jnp.int32(seed)}


def _two_checkpoints(directory) -> Checkpointer:
    checkpoints = Checkpointer(directory, max_to_keep=3)
    for step in (1, 2):
        checkpoints.save(step, _state(step), {"step": step})
    return checkpoints


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_newest_checkpoint_is_moved_aside_and_the_previous_restored(tmp_path, damage):
    directory = str(tmp_path / "checkpoints")
    _two_checkpoints(directory).close()
    DAMAGES[damage](os.path.join(directory, "2"))

    checkpoints = Checkpointer(directory)
    state, meta = checkpoints.restore(_state(0))
    assert meta == {"step": 1}
    np.testing.assert_array_equal(state["w"], _state(1)["w"])
    assert checkpoints.all_steps() == [1] and checkpoints.latest_step() == 1
    assert os.path.isdir(tmp_path / "checkpoints_damaged" / "2")  # moved, not deleted
    checkpoints.save(3, _state(3), {"step": 3})  # the directory stays usable
    assert checkpoints.all_steps() == [1, 3]


def test_a_damaged_meta_is_skipped_by_restore_meta_too(tmp_path):
    directory = str(tmp_path / "checkpoints")
    _two_checkpoints(directory).close()
    _empty(os.path.join(directory, "2", "meta", "metadata"))
    assert Checkpointer(directory, create=False).restore_meta() == {"step": 1}


def test_when_no_checkpoint_restores_the_error_lists_each_with_its_damage(tmp_path):
    directory = str(tmp_path / "checkpoints")
    _two_checkpoints(directory).close()
    _truncate_largest_array_file(os.path.join(directory, "2"))
    _empty(os.path.join(directory, "1", "state", "_METADATA"))
    with pytest.raises(DamagedCheckpointError) as info:
        Checkpointer(directory).restore(_state(0))
    message = str(info.value)
    assert f"no checkpoint in {directory} restores completely" in message
    assert f"{directory}/2: Exception: Encountered error while reading array" in message
    assert f"{directory}/1: JSONDecodeError" in message
    assert f"moved to {directory}_damaged/2" in message and f"moved to {directory}_damaged/1" in message


def test_an_explicit_damaged_step_names_its_path_and_stays_in_place(tmp_path):
    directory = str(tmp_path / "checkpoints")
    _two_checkpoints(directory).close()
    _cut(os.path.join(directory, "1", "meta", "metadata"))
    with pytest.raises(DamagedCheckpointError, match=rf"{directory}/1: JSONDecodeError"):
        Checkpointer(directory).restore(_state(0), step=1)
    assert os.path.isdir(os.path.join(directory, "1"))


def test_an_intact_checkpoint_of_other_shapes_is_a_mismatch_not_damage(tmp_path):
    directory = str(tmp_path / "checkpoints")
    _two_checkpoints(directory).close()
    with pytest.raises(CheckpointMismatchError, match=r"w: saved \(64, 48\), expected \(3, 3\)"):
        Checkpointer(directory).restore({"w": jnp.zeros((3, 3)), "step": jnp.int32(0)})
    assert Checkpointer(directory).all_steps() == [1, 2]  # nothing moved


def _losses(workdir) -> dict[int, float]:
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    return {row["step"]: row["loss"] for row in rows}


def test_training_resumes_from_the_checkpoint_before_a_damaged_one(tmp_path, tiny_moving_mnist):
    config = load_config_file("configs/vdsm/tiny.py", "stage1")
    config.data_dir, config.model_test_interval = tiny_moving_mnist, 0
    vdsm_train.train_and_evaluate(config, str(tmp_path / "full"))
    run = tmp_path / "run"
    vdsm_train.train_and_evaluate(config, str(run), stop_after_steps=5)  # saves at 2 and 4
    _truncate_largest_array_file(str(run / "checkpoints" / "4"))

    resumed = vdsm_train.train_and_evaluate(config, str(run))
    assert resumed["start_step"] == 2 and resumed["final_step"] == 6
    assert os.path.isdir(run / "checkpoints_damaged" / "4")
    assert Checkpointer(run / "checkpoints").all_steps() == [2, 4, 6]  # 4 written anew
    expected, got = _losses(tmp_path / "full"), _losses(run)
    for step in range(3, 7):
        assert got[step] == pytest.approx(expected[step], rel=1e-6), step
