"""Seconds per DRNet training step (both stages) and compile time, against the PyTorch originals.

    python benchmarks/drnet_step.py --reps 5 --out runs/drnet_step.json

Cases (float32, random inputs, the library's own jitted training steps, the state donated as in training):
  stage1   configs/drnet/moving_mnist.py:stage1 — batch 100, 64 px, nc 3, content dcgan_unet (128-d),
           pose dcgan (10-d): the scene-discriminator update and the main update (one step = both)
  stage2   configs/drnet/moving_mnist.py:stage2 — batch 100, 10 + 10 frames, LSTM 256×2, the frozen
           stage-1 networks in BatchNorm train mode (the original's default)
compile_s = trace + lower + XLA compile of the step; step_s = median of --reps steps after one warm-up
step (each step waits for its result). Beside them: a 2048² float32 matmul probe taken right after (the share
of the machine this run got; XLA's FLOP count is not reported, since its cost analysis counts the body of a
loop such as stage 2's per-frame-index encoder once). `--torch_json` (a benchmarks/torch_originals.py report
from the same machine) adds same-machine ratios. The originals take 2.4 s (stage 1, dcgan_unet content) and
≈2.7 s (stage 2) per step on this project's reference machine (benchmarks/README.md); the
issue's targets are ratios ≤ 0.80 and ≤ 0.30. Prints one line per case and writes JSON to --out.
Timings on a shared machine are approximate: the load average is recorded beside them.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import time

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from benchmarks.common import add_host_memory_flag, apply_host_memory_flag, machine_fields, write_report  # noqa: E402
from benchmarks.issue_configs import drnet_issue_config  # noqa: E402
from benchmarks.torch_originals import add_torch_json_flag, load_torch_seconds, same_machine_fields  # noqa: E402
from drnet_jax import train as drnet_train  # noqa: E402
from drnet_jax.models import DRNetModules  # noqa: E402
from drnet_jax.state import init_state  # noqa: E402

ORIGINAL_SECONDS = {"stage1": 2.4, "stage2": 2.7}  # performance.md, same machine kind
TARGET_RATIO = {"stage1": 0.80, "stage2": 0.30}


def _config(stage: int, conv_impl: str):
    config = drnet_issue_config(stage)
    config.conv_impl = conv_impl
    return config


def matmul_probe(size: int = 2048, reps: int = 3) -> float:
    """GFLOP/s of a float32 (size × size) matmul right now: how much of the (shared) machine this run gets."""
    a = jax.random.normal(jax.random.key(0), (size, size))
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    start = time.perf_counter()
    for _ in range(reps):
        f(a).block_until_ready()
    return 2 * size**3 * reps / (time.perf_counter() - start) / 1e9


def bench(stage: int, reps: int, conv_impl: str) -> dict:
    config = _config(stage, conv_impl)
    modules = DRNetModules.from_config(config)
    stage1 = jax.jit(modules.init_stage1)(jax.random.key(1)) if stage == 2 else None
    state = init_state(config, modules, jax.random.key(0), stage1)
    frames = 4 if stage == 1 else config.n_past + config.n_future
    size = config.image_width
    videos = jax.random.uniform(jax.random.key(2), (config.batch_size, frames, size, size, config.channels))
    step = jax.jit(drnet_train.make_train_step(config, modules), donate_argnums=0)

    start = time.perf_counter()
    compiled = step.lower(state, videos).compile()
    compile_s = time.perf_counter() - start
    state, metrics = compiled(state, videos)  # warm-up
    jax.block_until_ready(metrics)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        state, metrics = compiled(state, videos)
        jax.block_until_ready((state, metrics))
        times.append(time.perf_counter() - start)
    name = f"stage{stage}"
    step_s = statistics.median(times)
    probe = matmul_probe()
    return {
        "case": name,
        "batch_size": config.batch_size,
        "frames_per_example": frames,
        "content_model": config.content_model,
        "pose_model": config.pose_model,
        "conv_impl": conv_impl,
        "compile_s": compile_s,
        "step_s": step_s,
        "times_s": times,
        "original_s": ORIGINAL_SECONDS[name],
        "ratio_to_original": step_s / ORIGINAL_SECONDS[name],
        "target_ratio": TARGET_RATIO[name],
        "final_loss": float(metrics["loss"]),
        "matmul_probe_gflops": probe,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", choices=("stage1", "stage2"), default=None)
    parser.add_argument("--conv-impl", default="auto", help="'auto' (fast on CPU, xla on GPU), 'fast' or 'xla'")
    parser.add_argument("--out", default="runs/drnet_step.json")
    add_host_memory_flag(parser)
    add_torch_json_flag(parser)
    args = parser.parse_args()
    apply_host_memory_flag(args)
    here = load_torch_seconds(args.torch_json) if args.torch_json else {}

    results = []
    load_before = os.getloadavg()
    for stage in (1, 2):
        if args.only and args.only != f"stage{stage}":
            continue
        result = bench(stage, args.reps, args.conv_impl)
        result.update(same_machine_fields(here, f"drnet_stage{stage}", result["step_s"]))
        results.append(result)
        print(
            f"{result['case']}: {result['step_s']:.3f} s/step (compile {result['compile_s']:.1f} s), "
            f"{result['ratio_to_original']:.2f} x the original's {result['original_s']} s "
            f"(target <= {result['target_ratio']:.2f}); a 2048² sgemm got {result['matmul_probe_gflops']:.0f}",
            flush=True,
        )
        if "torch_here_s" in result:
            print(
                f"  same machine: torch step {result['torch_here_s']:.3f} s, "
                f"ratio {result['ratio_to_torch_here']:.2f} (target <= {result['target_ratio']:.2f})"
            )
    report = {
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        **machine_fields(),
        "loadavg_before": load_before,
        "loadavg_at_end": os.getloadavg(),
        "args": vars(args),
        "results": results,
    }
    write_report(args.out, report)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
