"""VDSM quickstart on the Moving MNIST digits bundled with the install (no downloads).

    python -m vdsm_jax.main --config configs/vdsm/quickstart.py --workdir runs/quickstart

The dataset (moving_mnist/quickstart: 1 digit, 64 px, 16 frames) is built into
`data_dir` on first use.
"""

import ml_collections


def get_config(stage: str | None = None) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.stage = stage or "stage1"
    config.seed = 0

    config.dataset = "moving_mnist"
    config.dataset_config = "quickstart"
    config.data_dir = "data"
    config.manual_dir = ""
    config.train_split = "train"
    config.test_split = "test"

    config.bs = 20
    config.seq_len = 16
    return config
