"""benchmarks/run.py end to end at smoke sizes (every case, JAX beside the PyTorch re-expression), the FLOP count
through loops, and the originals' CPU shim for `Tensor.to('cuda')`.

The real originals' side needs their checkouts (no network in CI); it is run by hand:
`python -m benchmarks.run --smoke --original-vdsm PATH --original-drnet PATH`.
"""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import torch
from conftest import REPO_ROOT

from benchmarks.cases import CASES, REPLACES, sides_of
from benchmarks.flops import program_flops
from benchmarks.originals import cpu_shims

# XLA's quickest compilation, and single-threaded Eigen kernels (two cases run at once on the suite's two cores).
FAST_XLA = ("--xla_backend_optimization_level=0", "--xla_cpu_multi_thread_eigen=false")


def test_smoke_run_times_every_case_on_both_sides_without_recompiling(tmp_path):
    """Two cases at a time, fast compilation, one compilation cache for the parameter initialisers the cases
    share: the timings do not matter here, the suite's time does."""
    out, table = tmp_path / "smoke.json", tmp_path / "smoke.md"
    command = [sys.executable, "-m", "benchmarks.run", "--smoke", "--jobs", "2", "--json", str(out)]
    command += ["--markdown", str(table), "--xla-flags", " ".join(FAST_XLA)]
    command += ["--compilation-cache", str(tmp_path / "cache")]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = {(r["case"], r["side"]): r for r in report["results"]}
    assert sorted(rows) == sorted((case, side) for case in CASES for side in sides_of(case, False))
    assert all(sides_of(case, True) == ("jax",) for case in REPLACES)
    for (case, side), row in rows.items():
        assert row["step_s"] > 0 and len(row["times_s"]) == 1 and row["peak_rss_mb"] > 0, (case, side)
        assert row["clips_per_s"] == row["clips_per_run"] / row["step_s"]
        if "loss" in row:
            assert jnp.isfinite(row["loss"]), (case, side)
        if side == "jax":
            assert row["recompiled"] is False and set(row["jit_cache_entries"].values()) == {1}, row
            assert row["compile_s"] > 0 and row["flops_per_run"] > 0 and row["gflops_per_s"] > 0, row
            if case in REPLACES:  # timed against the baselines of the original case it replaces
                replaced = rows[(REPLACES[case], "reexpression")]["step_s"]
                assert row["over_baselines"] == {"reexpression": row["step_s"] / replaced}
        else:
            assert row["jax_over_this"] == rows[(case, "jax")]["step_s"] / row["step_s"]
    peaks = report["matmul_peak_gflops"]
    assert peaks["jax"] > 0 and peaks["torch"] > 0 and len(report["matmul"]) == 4
    assert report["versions"]["jax"] == jax.__version__ and report["sizes"]["drnet"]["predict_steps"] == 3
    lines = table.read_text().splitlines()
    assert lines[0].startswith("| case | side | device | versions | compile s |")
    assert sum(line.startswith(("| vdsm_", "| drnet_")) for line in lines) == len(rows)
    assert any(
        line.startswith("| drnet_stage2_cached | this library") and "of re-expression drnet_stage2" in line
        for line in lines
    )
    assert "recompiled" not in table.read_text() and "failed" not in table.read_text()


def test_flops_count_every_trip_of_nested_scans():
    """XLA's cost analysis counts a loop body once; program_flops adds the other trips (4 x 3 matmuls here)."""
    x = jnp.ones((64, 64))

    def f(x):
        inner = lambda c, _: (c @ x, None)
        outer = lambda c, _: (jax.lax.scan(inner, c, None, length=3)[0], None)
        return jax.lax.scan(outer, x, None, length=4)[0]

    traced = jax.jit(f).trace(x)
    lowered = traced.lower()
    counted = program_flops(traced, lowered, lowered.compile())
    assert abs(counted["flops"] / (12 * 2 * 64**3) - 1) < 1e-4  # + the loop counters' adds
    assert counted["compiled_flops"] < counted["flops"] and counted["uncounted_loops"] == []


def test_tensor_to_cuda_stays_on_the_cpu_inside_the_shims_only(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    real_to = torch.Tensor.to
    x = torch.ones(3)
    with cpu_shims():
        for moved in (x.to("cuda"), x.to(device="cuda:0"), x.to(torch.device("cuda")), x.to("cpu", torch.float64)):
            assert moved.device.type == "cpu"
        assert x.to("cpu", torch.float64).dtype == torch.float64
    assert torch.Tensor.to is real_to
