"""One benchmark command: this library's steps and evaluation paths against the PyTorch originals, same machine,
same session.

    python -m benchmarks.run                                   # every case at the issue sizes, JAX vs re-expression
    python -m benchmarks.run --original-vdsm ~/DisentanglingSequences --original-drnet ~/drnet-py \\
        --json runs/bench.json --markdown runs/bench.md         # + the real originals, their own code
    python -m benchmarks.run --only drnet_stage1 drnet_stage2 --drnet-batch-size 50
    python -m benchmarks.run --smoke --json runs/smoke.json     # tiny sizes, one timed run each: does it all run?

Cases (benchmarks/cases.py): vdsm_stage1, vdsm_stage2 (optimiser steps), vdsm_swap, vdsm_generate (evaluation over
a test batch), drnet_stage1, drnet_stage2 (optimiser steps), drnet_predict (predict_steps frames). Each runs on
the JAX side and on the PyTorch re-expression, and on the real original where its checkout is given
(--original-vdsm: github.com/matthewvowels1/DisentanglingSequences; --original-drnet: github.com/edenton/drnet-py;
they need `pip install -c constraints.txt -e ".[bench]"`). Sizes: benchmarks/issue_configs.py, each one
overridable (--vdsm-bs, --drnet-predict-steps, ...).

Every measured case runs in its own process (benchmarks/worker.py), so that peak memory and thread pools do not
carry over; per case the JAX side, then its baselines, one after the other, so that drift of a shared machine
shows as drift between cases rather than between the sides of one case. A 2048² float32 matmul in JAX and in
torch is measured before the first case and after the last (the machine's peak, and how it moved). Prints the
Markdown table (benchmarks/report.py) and writes --json / --markdown; exits 1 if any case failed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import Any

from benchmarks.cases import CASES, REPLACES, model_of, sides_of
from benchmarks.common import add_host_memory_flag, machine_fields, versions, write_report
from benchmarks.issue_configs import ISSUE_SIZES, REPO, SIZE_HELP, resolve_sizes
from benchmarks.report import markdown
from vdcore.run_config import CONV_IMPLS


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--original-vdsm", default=None, help="a checkout of matthewvowels1/DisentanglingSequences")
    parser.add_argument("--original-drnet", default=None, help="a checkout of edenton/drnet-py")
    parser.add_argument("--only", nargs="+", choices=list(CASES), default=None, metavar="NAME", help="these cases")
    parser.add_argument("--json", default="", help="write the report here (JSON)")
    parser.add_argument("--markdown", default="", help="write the table here (Markdown)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one timed run each (issue_configs.py)")
    parser.add_argument("--steps", type=_positive, default=None, help="timed runs per case (default 5; smoke 1)")
    parser.add_argument("--warmup", type=_positive, default=1, help="untimed runs before them (default 1)")
    parser.add_argument("--xla-flags", default=None, help="XLA_FLAGS for the JAX processes (default: inherited)")
    parser.add_argument("--conv-impl", choices=CONV_IMPLS, default="auto", help="the JAX configs' conv_impl")
    parser.add_argument(
        "--compilation-cache",
        default=None,
        metavar="DIR",
        help="JAX's persistent compilation cache for the JAX processes (default: none, so that 'compile s' is a "
        "compilation; with a warm cache it measures reading the cache)",
    )
    parser.add_argument(
        "--jobs",
        type=_positive,
        default=1,
        help="cases run at once, torch with cores/jobs threads each (only for quick checks: timings suffer)",
    )
    add_host_memory_flag(parser)
    for model, sizes in ISSUE_SIZES.items():
        for key, value in sizes.items():
            flag = f"--{model}-{key.replace('_', '-')}"
            parser.add_argument(flag, type=_positive, default=None, dest=f"size__{model}__{key}", metavar="N",
                                help=f"{SIZE_HELP[key]} (issue: {value})")  # fmt: skip
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = 1 if args.smoke else 5
    for flag in ("original_vdsm", "original_drnet"):
        path = getattr(args, flag)
        if path is not None and not pathlib.Path(path).expanduser().is_dir():
            parser.error(f"--{flag.replace('_', '-')} {path}: not a folder")
    return args


def size_overrides(args: argparse.Namespace) -> dict[str, dict[str, int]]:
    overrides: dict[str, dict[str, int]] = {}
    for dest, value in vars(args).items():
        if dest.startswith("size__") and value is not None:
            _, model, key = dest.split("__")
            overrides.setdefault(model, {})[key] = value
    return overrides


def plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The worker jobs, in order: matmul probes, then per case JAX and its baselines, then the probes again."""
    sizes = resolve_sizes(args.smoke, size_overrides(args))
    originals = {"vdsm": args.original_vdsm, "drnet": args.original_drnet}
    probes = lambda when: [{"job": "matmul", "library": lib, "when": when} for lib in ("jax", "torch")]
    jobs = probes("start")
    for case in args.only or CASES:
        path = originals[model_of(case)]
        for side in sides_of(case, bool(path)):
            jobs.append(
                {
                    "job": "case",
                    "case": case,
                    "side": side,
                    "sizes": sizes,
                    "steps": args.steps,
                    "warmup": args.warmup,
                    "original": str(pathlib.Path(path).expanduser().resolve()) if side == "original" else None,
                    "conv_impl": args.conv_impl,
                    "glibc_malloc_defaults": args.glibc_malloc_defaults,
                }
            )
    return jobs + probes("end")


def worker_env(args: argparse.Namespace) -> dict[str, str]:
    """The workers' environment: this one, the repository importable, XLA_FLAGS and the compilation cache as asked."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    if args.xla_flags is not None:
        env["XLA_FLAGS"] = args.xla_flags
    if args.jobs > 1:  # torch's (OpenMP's) threads spin-wait: more threads than cores slows every job down
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // args.jobs))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    if args.compilation_cache:
        env["JAX_COMPILATION_CACHE_DIR"] = str(pathlib.Path(args.compilation_cache).expanduser().resolve())
    return env


def run_job(job: dict[str, Any], folder: pathlib.Path, number: int, env: dict[str, str]) -> dict[str, Any]:
    """Run one job in a fresh `python -m benchmarks.worker` process; its result, or the error it ended with."""
    spec, out, log = (folder / f"{number:03d}.{suffix}" for suffix in ("spec.json", "out.json", "log"))
    spec.write_text(json.dumps(job))
    with open(log, "w") as log_file:
        code = subprocess.call(
            [sys.executable, "-m", "benchmarks.worker", str(spec), str(out)],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    labels = {k: job[k] for k in ("case", "side", "library", "when") if k in job}
    if code == 0 and out.exists():
        return {**labels, **json.loads(out.read_text())}
    tail = log.read_text(errors="replace")[-4000:]
    last = [line for line in tail.splitlines() if line.strip()]
    return {**labels, "error": tail, "error_line": last[-1] if last else f"exit status {code}", "exit_status": code}


def _ratios(results: list[dict[str, Any]]) -> None:
    """Each baseline row gets `jax_over_this`: the JAX row's median step over its own (same case). The JAX row of
    a case in REPLACES gets `over_baselines` {side: its step over that side's step of the case it replaces}."""
    jax_step = {r["case"]: r["step_s"] for r in results if r["side"] == "jax" and "step_s" in r}
    for row in results:
        if row["side"] != "jax" and "step_s" in row and row["case"] in jax_step:
            row["jax_over_this"] = jax_step[row["case"]] / row["step_s"]
    for row in results:
        if row["side"] == "jax" and "step_s" in row and row["case"] in REPLACES:
            replaced = REPLACES[row["case"]]
            row["over_baselines"] = {
                base["side"]: row["step_s"] / base["step_s"]
                for base in results
                if base["case"] == replaced and base["side"] != "jax" and "step_s" in base
            }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    jobs = plan(args)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="benchmarks-") as tmp:
        folder = pathlib.Path(tmp)
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            env = worker_env(args)
            futures = [pool.submit(run_job, job, folder, i, env) for i, job in enumerate(jobs)]
            done = []
            for job, future in zip(jobs, futures, strict=True):
                done.append(future.result())
                label = job.get("case", f"matmul {job.get('library')}")
                status = "failed" if "error" in done[-1] else f"{done[-1].get('wall_s', 0):.0f} s"
                print(f"{label} {job.get('side', '')}: {status}", file=sys.stderr, flush=True)
    results = [r for r in done if "case" in r]
    _ratios(results)
    matmul = [r for r in done if "library" in r]
    best = lambda lib: max((p["best_gflops"] for p in matmul if p["library"] == lib and "error" not in p), default=None)
    report = {
        "benchmark": "benchmarks.run",
        "command": [sys.executable, "-m", "benchmarks.run", *(sys.argv[1:] if argv is None else argv)],
        "started": started,
        "wall_s": time.time() - started,
        **machine_fields(),
        "versions": versions(),
        "smoke": args.smoke,
        "steps": args.steps,
        "warmup": args.warmup,
        "jobs": args.jobs,
        "xla_flags": args.xla_flags if args.xla_flags is not None else os.environ.get("XLA_FLAGS", ""),
        "glibc_malloc_defaults": args.glibc_malloc_defaults,
        "conv_impl": args.conv_impl,
        "compilation_cache": args.compilation_cache,
        "sizes": resolve_sizes(args.smoke, size_overrides(args)),
        "originals": {"vdsm": args.original_vdsm, "drnet": args.original_drnet},
        "matmul": matmul,
        "matmul_peak_gflops": {"jax": best("jax"), "torch": best("torch")},
        "results": results,
    }
    table = markdown(report)
    print(table)
    write_report(args.json, report)
    if args.markdown:
        pathlib.Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.markdown).write_text(table)
        print(f"wrote {args.markdown}")
    for row in done:
        if "error" in row:
            label = row.get("case", row.get("library"))
            print(f"\n{label} {row.get('side', '')} failed:\n{row['error']}", file=sys.stderr)
    if any("error" in row for row in done):
        raise SystemExit(1)
    return report


if __name__ == "__main__":
    main()
