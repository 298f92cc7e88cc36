"""VDSM command line.

    python -m vdsm_jax.main --config configs/vdsm/quickstart.py --workdir runs/quickstart [--config.bs 8]

Prepares the configured dataset (procedural ones are built on first use) and writes
a preview of the training data into the workdir.
"""

from __future__ import annotations

import json
import os

from absl import app, flags, logging
from ml_collections import config_flags

from data_prep import build as data_build
from data_prep import preview as data_preview

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file (configs/vdsm/*.py[:stage]).", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, pictures and logs.")
flags.mark_flags_as_required(["config", "workdir"])


def prepare_data(config, workdir: str) -> dict:
    """Build the configured dataset if needed and preview it; return the build summary."""
    builder = data_build.build(config.dataset, config.data_dir, config.dataset_config, config.manual_dir or None)
    summary = data_build.summary(builder)
    os.makedirs(workdir, exist_ok=True)
    out = os.path.join(workdir, "data_preview.png")
    data_preview.preview(
        config.dataset,
        config.data_dir,
        out,
        config.dataset_config,
        config.train_split,
        num=8,
        frames=config.seq_len,
        gif=os.path.join(workdir, "data_preview.gif"),
    )
    with open(os.path.join(workdir, "data_summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    logging.info(
        "dataset %s/%s ready at %s: %s", summary["dataset"], summary["config"], summary["path"], summary["splits"]
    )
    logging.info("preview written to %s", out)
    return summary


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    prepare_data(FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
    app.run(main)
