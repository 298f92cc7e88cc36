"""Seconds per optimiser step of the real VDSM train step (vdsm_jax.train.make_train_step), stage 1 and/or 2.

    python benchmarks/vdsm_step.py --stage both --steps 5 --out runs/vdsm_step.json

Configuration (benchmarks/issue_configs.py): bs 20, seq_len T 8, 64x64x3 frames, z_dim 30, n_e_w 15, rnn 512 x 3 layers,
dynamics_dim 50, one particle; every other setting is vdsm_jax.config_defaults' (stage 1: Trace_ELBO over
the image encoder, id layers and MoE decoder, all trained; stage 2: the encoder and decoder frozen, the
dynamics networks trained through the frozen decoder). Parameters are freshly initialised (stage 2 starts
from fresh stage-1 networks: the cost of a step does not depend on their values); the batch is uniform
noise in [0, 1].

What is measured, per stage: the train step is jitted exactly as train.py does (``donate_argnums=0``);
"compile s" is ``jit(...).lower(...).compile()``; then one warm-up call, then ``--steps`` timed calls, each
ending in ``block_until_ready`` on the new state and metrics. Reported: median and min wall seconds per
step, median process CPU seconds per step (CPU/wall near the core count means the machine was ours), and
the ratio of the median to the PyTorch original's step on the reference machine (5.8 s stage 1, 8.6 s
stage 2; benchmarks/README.md) next to the targets (0.30 and 0.10 of those), and with
``--torch_json`` (a benchmarks/torch_originals.py report from the same machine) the same-machine ratio,
which is the like-for-like one (machines of one kind differ by 2x). The jit cache is
checked after the timed steps: a recompilation per step would show up as more than one cache entry.

The machine is shared: compare numbers from one run (or runs at the same load; the JSON records the load
average before and after each stage).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from benchmarks.common import add_host_memory_flag, apply_host_memory_flag, machine_fields, write_report  # noqa: E402
from benchmarks.issue_configs import VDSM_ISSUE_CONFIG as ISSUE_CONFIG  # noqa: E402 (imports no JAX)
from benchmarks.torch_originals import add_torch_json_flag, load_torch_seconds, same_machine_fields  # noqa: E402

# The original's seconds per step on the reference machine, and the target fraction of it (benchmarks/README.md).
TORCH_SECONDS = {1: 5.8, 2: 8.6}
TARGET_FRACTION = {1: 0.30, 2: 0.10}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=("1", "2", "both"), default="both", help="which train step to time")
    parser.add_argument(
        "--conv_impl", default="auto", help="config.conv_impl: 'fast', 'xla' or 'auto' (the backend's default)"
    )
    parser.add_argument("--steps", type=int, default=5, help="timed steps per stage (after one warm-up step)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the parameters and the noise batch")
    parser.add_argument("--xla_flags", default=None, help="XLA_FLAGS for this process (set before JAX starts)")
    parser.add_argument("--out", default="runs/vdsm_step.json", help="JSON output path ('' to skip)")
    add_host_memory_flag(parser)
    add_torch_json_flag(parser)
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    return args


def time_stage(stage: int, conv_impl: str, steps: int, seed: int) -> dict:
    """Build the stage's state and jitted train step at ISSUE_CONFIG; return compile and per-step timings."""
    import jax

    from vdsm_jax.config_defaults import base_config, stage_config
    from vdsm_jax.models import VDSMModules
    from vdsm_jax.schedules import make_schedules
    from vdsm_jax.state import init_state, make_optimizer
    from vdsm_jax.train import make_train_step

    config = stage_config(base_config(), stage)
    config.conv_impl = conv_impl
    for key, value in ISSUE_CONFIG.items():
        config[key] = value
    modules = VDSMModules.from_config(config)
    key = jax.random.key(seed)
    stage1_params = modules.init(jax.random.fold_in(key, 1), 1, config.image_size) if stage == 2 else None
    state = init_state(config, modules, jax.random.fold_in(key, 2), stage1_params)
    shape = (config.bs, config.seq_len, config.image_size, config.image_size, config.nc)
    videos = jax.random.uniform(jax.random.fold_in(key, 3), shape)
    step = jax.jit(
        make_train_step(modules, stage, make_optimizer(config), make_schedules(config), config.num_particles),
        donate_argnums=0,
    )
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    step.lower(state, videos).compile()
    compile_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    state, metrics = step(state, videos)
    jax.block_until_ready((state, metrics))
    first_call_s = time.perf_counter() - t0
    wall, cpu = [], []
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        state, metrics = step(state, videos)
        jax.block_until_ready((state, metrics))
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    median = statistics.median(wall)
    torch_s = TORCH_SECONDS[stage]
    return {
        "stage": stage,
        "conv_impl": conv_impl,
        "compile_s": compile_s,
        "first_call_s": first_call_s,
        "steps": steps,
        "median_s": median,
        "min_s": min(wall),
        "wall_s": wall,
        "median_cpu_s": statistics.median(cpu),
        "cpu_s": cpu,
        "torch_s": torch_s,
        "ratio_to_torch": median / torch_s,
        "target_ratio": TARGET_FRACTION[stage],
        "target_s": TARGET_FRACTION[stage] * torch_s,
        "meets_target": median <= TARGET_FRACTION[stage] * torch_s,
        "jit_cache_entries": step._cache_size(),
        "final_loss": float(metrics["loss"]),
        "finite": bool(metrics["finite"]),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.xla_flags is not None:
        os.environ["XLA_FLAGS"] = args.xla_flags
    apply_host_memory_flag(args)
    import jax

    here = load_torch_seconds(args.torch_json) if args.torch_json else {}

    stages = (1, 2) if args.stage == "both" else (int(args.stage),)
    conv_impl = None if args.conv_impl in ("", "auto") else args.conv_impl
    header = (
        f"{'stage':<6} {'conv':<5} {'compile s':>9} {'s/step':>7} {'min s':>6} {'cpu s':>6} "
        f"{'torch s':>7} {'ratio':>6} {'target':>6} {'ok':>3} {'load':>5}"
    )
    print(header)
    print("-" * len(header))
    results = []
    for stage in stages:
        res = time_stage(stage, conv_impl or "auto", args.steps, args.seed)
        res.update(same_machine_fields(here, f"vdsm_stage{stage}", res["median_s"]))
        results.append(res)
        print(
            f"{stage:<6} {res['conv_impl']:<5} {res['compile_s']:9.1f} {res['median_s']:7.3f} {res['min_s']:6.3f} "
            f"{res['median_cpu_s']:6.3f} {res['torch_s']:7.1f} {res['ratio_to_torch']:6.3f} "
            f"{res['target_ratio']:6.2f} {'yes' if res['meets_target'] else 'no':>3} {res['loadavg_after'][0]:5.1f}",
            flush=True,
        )
        if "torch_here_s" in res:
            print(
                f"       same machine: torch step {res['torch_here_s']:.3f} s, ratio {res['ratio_to_torch_here']:.3f} "
                f"(target {res['target_ratio']:.2f}: {'yes' if res['ratio_to_torch_here'] <= res['target_ratio'] else 'no'})"
            )
        if res["jit_cache_entries"] != 1:
            print(f"warning: stage {stage} train step has {res['jit_cache_entries']} jit cache entries (recompiled)")
    report = {
        "benchmark": "vdsm_step",
        "config": ISSUE_CONFIG,
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        **machine_fields(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "args": vars(args),
        "results": results,
    }
    return write_report(args.out, report)


if __name__ == "__main__":
    main()
