"""One measured case (or one matmul-peak probe) in this process: what benchmarks/run.py starts once per case.

    python -m benchmarks.worker SPEC_JSON OUT_JSON

SPEC_JSON: {"job": "case", "case": name, "side": "jax" | "reexpression" | "original", "sizes": {...}, "steps": n,
"warmup": n, "original": path or null, "conv_impl": JAX's config.conv_impl, "glibc_malloc_defaults": bool}, or
{"job": "matmul", "library": "jax" | "torch"}. The result goes to OUT_JSON (the originals print to stdout as they
run).

A case is measured as follows. JAX: each Program of the case is traced, lowered and compiled ahead of the calls
(`compile_s`, the sum over programs; the calls then reuse the executables) and its FLOPs per call counted
(benchmarks/flops.py). Then `warmup` untimed runs, then `steps` timed runs, each waiting for its result
(`jax.block_until_ready`; torch on the CPU returns when done). After them, each program's jit cache must hold one
entry: more means a recompilation inside the timed runs (`recompiled`). `peak_rss_mb` is this process's peak
resident memory over the whole case (build, compile, runs).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks.cases import Case
from benchmarks.common import apply_host_memory, jax_matmul_peak, peak_rss_mb, torch_matmul_peak


def _compile_programs(case: Case) -> dict[str, Any]:
    """Compile every program ahead of the runs; FLOPs per run (calls_per_run x each program's)."""
    from benchmarks.flops import program_flops

    compile_s, flops, compiled_flops, uncounted, programs = 0.0, 0.0, 0.0, [], {}
    for program in case.programs:
        start = time.perf_counter()
        traced = program.jitted.trace(*program.args)
        lowered = traced.lower()
        compiled = lowered.compile()
        seconds = time.perf_counter() - start
        counted = program_flops(traced, lowered, compiled)
        compile_s += seconds
        flops += program.calls_per_run * counted["flops"]
        compiled_flops += program.calls_per_run * counted["compiled_flops"]
        uncounted += counted["uncounted_loops"]
        programs[program.name] = {"compile_s": seconds, "calls_per_run": program.calls_per_run, **counted}
    return {
        "compile_s": compile_s,
        "flops_per_run": flops,
        "compiled_flops_per_run": compiled_flops,
        "uncounted_loops": sorted(set(uncounted)),
        "programs": programs,
    }


def measure(case: Case, steps: int, warmup: int, block: Callable[[Any], Any]) -> dict[str, Any]:
    """Compile (JAX), warm up, time `steps` runs of `case`, each until `block(its output)` returns; the fields of
    one result row."""
    result: dict[str, Any] = {"device": case.device, "clips_per_run": case.clips, **case.info}
    if case.programs:
        result.update(_compile_programs(case))
    first_s = []
    for _ in range(warmup):
        start = time.perf_counter()
        block(case.run())
        first_s.append(time.perf_counter() - start)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        out = case.run()
        block(out)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    result.update(
        warmup_s=first_s,
        times_s=times,
        step_s=median,
        min_s=min(times),
        steps_per_s=1.0 / median,
        clips_per_s=case.clips / median,
        **case.summary(out),
    )
    if case.programs:
        cache = {p.name: p.jitted._cache_size() for p in case.programs}
        result["jit_cache_entries"] = cache
        result["recompiled"] = any(entries != 1 for entries in cache.values())
        result["gflops_per_s"] = result["flops_per_run"] / median / 1e9
    return result


def run_case(spec: dict[str, Any]) -> dict[str, Any]:
    """Build the spec's case on its side (JAX: freed host memory kept first, as the training CLI; the originals:
    inside the CPU shims, build and runs) and measure it; `build_s` is the build's time (parameter init, ...)."""
    side, name = spec["side"], spec["case"]
    if side == "jax":
        keep = apply_host_memory(spec.get("glibc_malloc_defaults", False))
        import jax

        from benchmarks.jax_cases import BUILDERS

        shims, block = contextlib.nullcontext(), jax.block_until_ready
        build = lambda: BUILDERS[name](spec["sizes"], spec.get("conv_impl", "auto"))
    else:
        import torch

        keep, block = None, lambda out: out  # torch on the CPU returns when done
        torch.manual_seed(0)
        if side == "reexpression":
            from benchmarks.torch_cases import BUILDERS

            shims, build = contextlib.nullcontext(), lambda: BUILDERS[name](spec["sizes"])
        else:
            from benchmarks.original_cases import BUILDERS
            from benchmarks.originals import cpu_shims

            shims, build = cpu_shims(), lambda: BUILDERS[name](spec["sizes"], spec["original"])
    with shims:
        start = time.perf_counter()
        case = build()
        build_s = time.perf_counter() - start
        result = measure(case, spec["steps"], spec["warmup"], block)
    return {**result, "build_s": build_s, "keep_freed_memory": keep}


def main(argv: list[str] | None = None) -> None:
    started = time.time()
    spec_path, out_path = sys.argv[1:] if argv is None else argv
    with open(spec_path) as f:
        spec = json.load(f)
    load_before = os.getloadavg()
    if spec["job"] == "matmul":
        result = jax_matmul_peak() if spec["library"] == "jax" else torch_matmul_peak()
    else:
        result = run_case(spec)
    result.update(
        started=started, wall_s=time.time() - started, loadavg_before=load_before, loadavg_after=os.getloadavg()
    )
    result["peak_rss_mb"] = peak_rss_mb()
    with open(out_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
