"""Input-pipeline throughput: batches/s of the stage-1 loaders, after warm-up.

    python benchmarks/loader_throughput.py --data_dir data --lpc_dir ../shared/data/lpc --seconds 20 \
        --out runs/loader_throughput.json

Cases:
  vdsm_stage1_sprites   Sprites 'standard' train, pairs of actions of one character: B 20, T 16, 64 px RGB.
  drnet_stage1_mnist    Moving MNIST 'drnet' train, frames 0..3 of each 20-frame clip: B 100, T 4, 64 px RGB.
Missing datasets are built first (Moving MNIST from nothing; Sprites only with --lpc_dir, else
that case is skipped and says so). Each loader setting is "read_threads:prefetch:worker_count"
(see data_prep.input_pipeline.make_batches); several can be compared in one run with --settings.
Prints a table and writes the results as JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from data_prep.input_pipeline import ensure_built, make_batches, split_source  # noqa: E402

CASES = {
    "vdsm_stage1_sprites": dict(
        dataset="sprites",
        config="standard",
        sampler="pair",
        sampler_args={"group_by": "character", "distinct_by": "action", "seq_len": 16},
        batch_size=20,
    ),
    "drnet_stage1_mnist": dict(
        dataset="moving_mnist",
        config="drnet",
        sampler="four_frames",
        sampler_args={"max_step": 20, "frame_selection": "first4"},
        batch_size=100,
    ),
}


def parse_setting(text: str) -> dict[str, int]:
    try:
        threads, prefetch, workers = (int(x) for x in text.split(":"))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"setting {text!r} is not read_threads:prefetch:worker_count") from e
    return {"read_threads": threads, "prefetch": prefetch, "worker_count": workers}


def measure(case: dict, data_dir: str, setting: dict[str, int], seconds: float, warmup: int, seed: int) -> dict:
    """Build the pipeline, take `warmup` batches, then count batches for `seconds`."""
    start = time.perf_counter()
    batches = make_batches(
        case["dataset"],
        "train",
        case["sampler"],
        case["sampler_args"],
        batch_size=case["batch_size"],
        data_dir=data_dir,
        config=case["config"],
        seed=seed,
        num_devices=1,
        **setting,
    )
    setup_s = time.perf_counter() - start
    batch = next(batches)
    first_batch_s = time.perf_counter() - start - setup_s
    for _ in range(warmup - 1):
        next(batches)
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        batch = next(batches)
        count += 1
    rate = count / elapsed
    shape = list(batch["video"].shape)
    return {
        "setting": setting,
        "batch_shape": shape,
        "setup_s": round(setup_s, 3),
        "first_batch_s": round(first_batch_s, 3),
        "batches": count,
        "seconds": round(elapsed, 3),
        "batches_per_s": round(rate, 3),
        "examples_per_s": round(rate * shape[0], 1),
        "ms_per_batch": round(1000 / rate, 2) if rate else None,
        "float32_mb_per_s": round(rate * batch["video"].nbytes / 1e6, 1),
        "num_items": batches.num_items,
    }


def label_table_cost(name: str, data_dir: str, config: str) -> dict:
    """Seconds to read every record's labels (video bytes skipped, not decoded)."""
    from data_prep.input_pipeline import open_dataset

    source = split_source(open_dataset(name, data_dir, config), "train")
    start = time.perf_counter()
    labels = source.labels()
    return {"records": len(source), "labels": sorted(labels), "seconds": round(time.perf_counter() - start, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default="data", help="where built datasets live (missing ones are built)")
    parser.add_argument("--lpc_dir", help="LPC layer sheets, to build Sprites if it is not built yet")
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per case and setting")
    parser.add_argument("--warmup", type=int, default=3, help="batches taken before measuring")
    parser.add_argument(
        "--settings",
        nargs="+",
        type=parse_setting,
        default=[parse_setting("2:2:0")],
        help="loader settings read_threads:prefetch:worker_count (default 2:2:0)",
    )
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/loader_throughput.json", help="JSON results file")
    args = parser.parse_args(argv)

    results = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "seconds_per_measurement": args.seconds,
        "cases": {},
    }
    for name in args.cases:
        case = CASES[name]
        entry: dict = {
            "dataset": case["dataset"],
            "config": case["config"],
            "sampler": case["sampler"],
            "sampler_args": case["sampler_args"],
            "batch_size": case["batch_size"],
            "runs": [],
        }
        results["cases"][name] = entry
        manual_dir = args.lpc_dir if case["dataset"] == "sprites" else None
        start = time.perf_counter()
        try:
            ensure_built(case["dataset"], args.data_dir, case["config"], manual_dir=manual_dir)
        except FileNotFoundError as e:
            entry["skipped"] = str(e)
            print(f"{name}: skipped: {e}")
            continue
        entry["build_or_open_s"] = round(time.perf_counter() - start, 2)
        if case["sampler"] == "pair":
            entry["label_table"] = label_table_cost(case["dataset"], args.data_dir, case["config"])
        for setting in args.settings:
            entry["runs"].append(measure(case, args.data_dir, setting, args.seconds, args.warmup, args.seed))

    header = (
        f"{'case':<22} {'threads:prefetch:workers':>24} {'batch':>22} {'batches/s':>10} {'examples/s':>11} "
        f"{'ms/batch':>9} {'first(s)':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, entry in results["cases"].items():
        if "skipped" in entry:
            print(f"{name:<22} skipped (see JSON)")
        for run in entry["runs"]:
            s = run["setting"]
            label = f"{s['read_threads']}:{s['prefetch']}:{s['worker_count']}"
            print(
                f"{name:<22} {label:>24} {str(tuple(run['batch_shape'])):>22} {run['batches_per_s']:>10.2f} "
                f"{run['examples_per_s']:>11.1f} {run['ms_per_batch']:>9.1f} {run['first_batch_s']:>9.2f}"
            )
        if "label_table" in entry:
            table = entry["label_table"]
            print(f"{'':<22} label table: {table['records']} records in {table['seconds']} s (video not decoded)")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
