"""Batch layout over a 'data' mesh, on 4 fake CPU devices in a subprocess (XLA flags must precede importing jax)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, xla_flags

from data_prep.batch_split import check_divisible

SCRIPT = r"""
import json
import numpy as np
import jax
from data_prep.input_pipeline import make_batches
from data_prep.samplers import SplitSource
from vdcore.sharding import batch_sharding, data_mesh, shard_batch

result = {"device_count": jax.device_count()}
mesh = data_mesh()
result["axis_names"] = list(mesh.axis_names)
result["mesh_shape"] = dict(mesh.shape)
result["spec_is_data"] = batch_sharding(mesh).spec == jax.sharding.PartitionSpec("data")

video = np.arange(8 * 2 * 3, dtype=np.float32).reshape(8, 2, 3)
out = shard_batch({"video": video, "index": np.arange(8)}, mesh)
result["global_shape"] = list(out["video"].shape)
result["equal"] = bool(np.array_equal(np.asarray(out["video"]), video))
shards = sorted(out["video"].addressable_shards, key=lambda s: s.index[0].start)
result["shards"] = [[list(s.data.shape), s.index[0].start, s.index[0].stop, str(s.device)] for s in shards]
result["shard_rows_match"] = all(
    np.array_equal(np.asarray(s.data), video[s.index[0].start : s.index[0].stop]) for s in shards
)
result["index_spec_is_data"] = out["index"].sharding.spec == jax.sharding.PartitionSpec("data")

def error(fn):
    try:
        fn()
    except ValueError as e:
        return str(e)
    return None

result["shard_error"] = error(lambda: shard_batch({"video": np.zeros((6, 3), np.float32)}, mesh))
result["mixed_error"] = error(lambda: shard_batch({"a": np.zeros((8, 3)), "b": np.zeros((4,))}, mesh))
records = [{"video": np.zeros((4, 2, 2, 1), np.uint8), "clip": i} for i in range(16)]
source = SplitSource("fake", "train", records)
result["pipeline_error"] = error(lambda: make_batches(source, sampler="window", sampler_args={"seq_len": 2},
                                                       batch_size=6))
batch = next(make_batches(source, sampler="window", sampler_args={"seq_len": 2}, batch_size=8))
sharded = shard_batch(batch, mesh)
result["pipeline_batch"] = {k: [list(v.shape), len(v.addressable_shards)] for k, v in sharded.items()}
print("RESULT" + json.dumps(result))
"""


@pytest.fixture(scope="module")
def four_devices() -> dict:
    env = dict(os.environ, XLA_FLAGS=xla_flags("--xla_force_host_platform_device_count=4"), JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


def test_mesh_has_one_data_axis_over_all_devices(four_devices):
    assert four_devices["device_count"] == 4
    assert four_devices["axis_names"] == ["data"] and four_devices["mesh_shape"] == {"data": 4}
    assert four_devices["spec_is_data"]


def test_batch_of_8_is_4_shards_of_2_rows(four_devices):
    assert four_devices["global_shape"] == [8, 2, 3] and four_devices["equal"]
    shards = four_devices["shards"]
    assert [s[0] for s in shards] == [[2, 2, 3]] * 4
    assert [(s[1], s[2]) for s in shards] == [(0, 2), (2, 4), (4, 6), (6, 8)]
    assert len({s[3] for s in shards}) == 4 and four_devices["shard_rows_match"]
    assert four_devices["index_spec_is_data"]


def test_batch_of_6_on_4_devices_is_refused(four_devices):
    for key in ("shard_error", "pipeline_error"):
        assert four_devices[key] is not None
        assert four_devices[key].startswith("batch size 6 is not divisible by the 4 devices")
    assert "disagree on the batch size" in four_devices["mixed_error"]


def test_pipeline_batch_is_laid_out_over_the_mesh(four_devices):
    layout = four_devices["pipeline_batch"]
    assert layout["video"] == [[8, 2, 2, 2, 1], 4] and layout["index"] == [[8], 4]


def test_check_divisible():
    check_divisible(8, 4)
    check_divisible(3, 1)
    with pytest.raises(ValueError, match=r"batch size 6 is not divisible by the 4 devices .* \(e\.g\. 4 or 8\)"):
        check_divisible(6, 4)
    with pytest.raises(ValueError, match=r"batch size 2 is not divisible by the 4 devices .* \(e\.g\. 4\)"):
        check_divisible(2, 4)
    with pytest.raises(ValueError, match="batch size must be positive"):
        check_divisible(0, 4)


@pytest.mark.parametrize(("package", "field"), [("vdsm", "bs"), ("drnet", "batch_size")])
def test_training_refuses_a_batch_the_devices_cannot_split_before_building_data(package, field, tmp_path, monkeypatch):
    import importlib

    import jax
    from conftest import load_config_file

    train = importlib.import_module(f"{package}_jax.train")
    config = load_config_file(f"configs/{package}/tiny.py", "stage1")
    config.data_dir, config[field] = str(tmp_path / "data"), 6
    monkeypatch.setattr(jax, "device_count", lambda: 4)
    with pytest.raises(ValueError, match=rf"config.{field} 6 is not divisible by the 4 devices .* \(e\.g\. 4 or 8\)"):
        train.train_and_evaluate(config, str(tmp_path / "run"))
    assert not (tmp_path / "data").exists()
