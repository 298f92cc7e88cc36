"""Write a PNG preview grid (and optionally a GIF) of a built dataset.

    python -m vdeval.preview NAME --data_dir DIR [--config C] [--split train] [--num 8] --out preview.png

Rows are examples (the first `--num` records of the split, or random ones with
--seed), columns are frames. The labels of each row are printed and written
next to the picture as JSON (same name, .json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from data_prep.builders import DATASET_NAMES
from data_prep.errors import INPUT_ERRORS, DataError
from data_prep.input_pipeline import open_dataset
from vdcore import images


def load_examples(name: str, data_dir: str, config: str | None, split: str, indices: list[int]) -> list[dict]:
    """The records of `split` at `indices` (modulo its size); DataError for a split that is absent or empty."""
    builder = open_dataset(name, data_dir, config)
    source = builder.as_data_source()
    if split not in source:
        raise DataError(builder.data_path, f"no split {split!r} in dataset {name!r}; splits: {sorted(source)}")
    records = source[split]
    if len(records) == 0:
        raise DataError(builder.data_path, f"split {split!r} of dataset {name!r} is empty")
    return [records[i % len(records)] for i in indices]


def preview(
    name: str,
    data_dir: str,
    out: str,
    config: str | None = None,
    split: str = "train",
    num: int = 8,
    frames: int = 16,
    seed: int | None = None,
    gif: str | None = None,
) -> list[dict]:
    """Write the grid to `out` (and a GIF to `gif`); return the label dicts of the rows."""
    indices = list(range(num)) if seed is None else np.random.default_rng(seed).permutation(10**6)[:num].tolist()
    examples = load_examples(name, data_dir, config, split, indices)
    length = min(frames, min(len(e["video"]) for e in examples))
    videos = np.stack([e["video"][:length] for e in examples])
    images.save_png(out, images.video_grid(videos))
    if gif:
        images.save_gif(gif, videos, fps=10)
    labels = [{k: np.asarray(v).tolist() for k, v in e.items() if k != "video"} for e in examples]
    with open(os.path.splitext(out)[0] + ".json", "w", encoding="utf-8") as f:
        json.dump({"dataset": name, "config": config, "split": split, "rows": labels}, f, indent=1)
    return labels


def _positive_int(text: str) -> int:
    """argparse type of a count: an integer >= 1 (0 rows or frames would fail later, far from the flag)."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vdeval.preview", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=DATASET_NAMES)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--config", default=None)
    parser.add_argument("--split", default="train")
    parser.add_argument("--num", type=_positive_int, default=8, help="number of examples (rows)")
    parser.add_argument("--frames", type=_positive_int, default=16, help="at most this many frames (columns)")
    parser.add_argument("--seed", type=int, default=None, help="pick random examples with this seed")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--gif", default=None, help="also write an animated GIF here")
    args = parser.parse_args(argv)
    try:
        labels = preview(
            args.name, args.data_dir, args.out, args.config, args.split, args.num, args.frames, args.seed, args.gif
        )
    except INPUT_ERRORS as error:  # the message names the folder, dataset or split and what was expected
        parser.exit(1, f"{parser.prog}: error: {error}\n")
    for row, label in enumerate(labels):
        print(f"row {row}: " + ", ".join(f"{k}={v}" for k, v in sorted(label.items())))
    print(f"wrote {args.out}" + (f" and {args.gif}" if args.gif else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
