"""Build a dataset once, reproducibly and offline.

    python -m data_prep.build NAME --data_dir DIR [--config CONFIG] [--manual_dir DIR] [--lpc_dir DIR]

Examples:
    python -m data_prep.build moving_mnist --data_dir data --config quickstart
    python -m data_prep.build sprites --data_dir data --lpc_dir path/to/lpc
    python -m data_prep.build mug_fed --data_dir data --manual_dir path/to/mug
    python -m data_prep.build --list
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from data_prep.builders import DATASET_NAMES, VideoDatasetBuilder, builder_class, get_builder
from data_prep.errors import INPUT_ERRORS


def build(
    name: str,
    data_dir: str | os.PathLike,
    config: str | None = None,
    manual_dir: str | os.PathLike | None = None,
) -> VideoDatasetBuilder:
    """Prepare dataset `name` (with builder config `config`) in `data_dir`; a built dataset is reused."""
    import tensorflow_datasets as tfds

    builder = get_builder(name, data_dir, config)
    download_config = tfds.download.DownloadConfig(manual_dir=None if manual_dir is None else os.fspath(manual_dir))
    builder.download_and_prepare(download_config=download_config)
    return builder


def summary(builder: VideoDatasetBuilder, seconds: float | None = None) -> dict:
    """Machine-readable description of a built dataset: where, configs, counts, skips."""
    metadata = dict(builder.info.metadata or {})
    return {
        "dataset": builder.name,
        "config": builder.builder_config.name,
        "path": os.fspath(builder.data_path),
        "splits": {name: info.num_examples for name, info in builder.info.splits.items()},
        "video_shape": list(builder.info.features["video"].shape),
        "labels": sorted(k for k in builder.info.features if k != "video"),
        "bad_samples": metadata.get("bad_samples", {}),
        "build_seconds": seconds,
    }


def _list_datasets() -> str:
    lines = []
    for name in DATASET_NAMES:
        cls = builder_class(name)
        configs = ", ".join(c.name for c in cls.BUILDER_CONFIGS)
        manual = " (manual files needed)" if cls.MANUAL_FILES else ""
        lines.append(f"{name}{manual}: configs {configs}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data_prep.build",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.split("\n\n")[1:]),
    )
    parser.add_argument("name", nargs="?", choices=DATASET_NAMES, help="dataset to build")
    parser.add_argument("--data_dir", help="where built datasets live (created if missing)")
    parser.add_argument("--config", help="builder config name (default: the dataset's first config)")
    parser.add_argument("--manual_dir", help="folder holding manually downloaded files (mug_fed, kth, full MNIST)")
    parser.add_argument("--lpc_dir", help="folder holding the LPC layer sheets (sprites)")
    parser.add_argument("--list", action="store_true", help="list datasets and their configs, then exit")
    parser.add_argument("--json", help="also write the build summary as JSON to this file")
    args = parser.parse_args(argv)

    if args.list:
        print(_list_datasets())
        return 0
    if args.name is None or args.data_dir is None:
        parser.error("NAME and --data_dir are required (or use --list)")
    if args.lpc_dir and args.name != "sprites":
        parser.error("--lpc_dir only applies to the sprites dataset")
    if args.lpc_dir and args.manual_dir:
        parser.error("give the sheets folder once: --lpc_dir or --manual_dir")
    manual_dir = args.lpc_dir or args.manual_dir

    start = time.perf_counter()
    try:
        builder = build(args.name, args.data_dir, args.config, manual_dir)
    except INPUT_ERRORS as error:  # the message names the file, folder or name and what was expected
        parser.exit(1, f"{parser.prog}: error: {error}\n")
    info = summary(builder, round(time.perf_counter() - start, 2))
    print(f"\n{info['dataset']}/{info['config']} is ready at {info['path']}")
    for split, count in info["splits"].items():
        print(f"  {split}: {count} examples")
    print(f"  video shape {info['video_shape']} uint8; labels: {', '.join(info['labels'])}")
    skipped = info["bad_samples"].get("skipped_total", 0)
    if skipped:
        print(f"  skipped {skipped} bad samples: {info['bad_samples'].get('skipped_by_reason')}")
    print(f"  took {info['build_seconds']} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(info, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
