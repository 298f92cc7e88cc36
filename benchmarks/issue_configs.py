"""The sizes every benchmark case runs at, defined once for the JAX side and both PyTorch baselines.

No JAX import here: the benchmark's parent process (benchmarks/run.py) never starts JAX.

ISSUE_SIZES are the configurations of the performance notes: VDSM (Vowels et al., CVPR 2021) at bs 20, T 8,
64x64x3 frames, z_dim 30, n_e_w 15, rnn 512 x 3, dynamics_dim 50, one particle; DRNet (Denton & Birodkar,
NeurIPS 2017) as configs/drnet/moving_mnist.py (bs 100, 64 px, nc 3, dcgan_unet content 128-d, dcgan pose
10-d; stage 2: 10 + 10 frames, LSTM 256 x 2). The evaluation paths use a test batch: VDSM swaps every
(identity, dynamics) pair of `test_batch` clips and generates `test_batch` clips from the priors (the original's
`swap_id_generate_sequence` and `sample_sequence`); DRNet predicts `predict_steps` frames after n_past given
ones for `predict_batch` clips (the original's `plot_gen` loop, 10 rows in its pictures). SMOKE_SIZES are the
smallest sizes that still run every code path (two clips, two frames, a two-layer RNN where the sizes allow it).
"""

from __future__ import annotations

import importlib.util
import pathlib
from typing import Any

import ml_collections

REPO = pathlib.Path(__file__).resolve().parent.parent

# Frame size and channels are fixed by the originals' networks (VDSM: 64 px only; DRNet: the 64-px models here).
VDSM_FIXED = {"image_size": 64, "nc": 3, "num_particles": 1}

ISSUE_SIZES: dict[str, dict[str, int]] = {
    "vdsm": {"bs": 20, "seq_len": 8, "z_dim": 30, "n_e_w": 15, "dynamics_dim": 50, "rnn_dim": 512, "rnn_layers": 3,
             "test_batch": 8},
    "drnet": {"batch_size": 100, "content_dim": 128, "pose_dim": 10, "rnn_size": 256, "rnn_layers": 2, "n_past": 10,
              "n_future": 10, "predict_batch": 10, "predict_steps": 500},
}  # fmt: skip

SMOKE_SIZES: dict[str, dict[str, int]] = {
    "vdsm": {"bs": 2, "seq_len": 2, "z_dim": 4, "n_e_w": 2, "dynamics_dim": 3, "rnn_dim": 8, "rnn_layers": 2,
             "test_batch": 2},
    "drnet": {"batch_size": 4, "content_dim": 8, "pose_dim": 2, "rnn_size": 8, "rnn_layers": 2, "n_past": 2,
              "n_future": 2, "predict_batch": 2, "predict_steps": 3},
}  # fmt: skip

# What each size means (the --vdsm-* / --drnet-* flags of benchmarks/run.py show these).
SIZE_HELP = {
    "bs": "clips per VDSM training batch",
    "seq_len": "frames per VDSM clip (training and evaluation)",
    "z_dim": "VDSM per-frame latent size",
    "n_e_w": "VDSM identity size (mixture-of-experts components)",
    "dynamics_dim": "VDSM dynamics latent size",
    "rnn_dim": "VDSM LSTM width",
    "rnn_layers": "LSTM layers",
    "test_batch": "VDSM evaluation clips (swap: every pair of them; generate: that many)",
    "batch_size": "DRNet training batch",
    "content_dim": "DRNet content code size",
    "pose_dim": "DRNet pose code size",
    "rnn_size": "DRNet pose-LSTM width",
    "n_past": "DRNet frames given (stage 2 and prediction)",
    "n_future": "DRNet frames predicted in stage-2 training",
    "predict_batch": "DRNet prediction clips",
    "predict_steps": "DRNet frames predicted per clip",
}


def vdsm_config(stage: int, sizes: dict[str, int], conv_impl: str = "auto") -> ml_collections.ConfigDict:
    """vdsm_jax's defaults for `stage` (1 or 2) at `sizes` (ISSUE_SIZES['vdsm']'s keys)."""
    from vdsm_jax.config_defaults import base_config, stage_config

    config = stage_config(base_config(), stage)
    config.update({**VDSM_FIXED, **{k: v for k, v in sizes.items() if k != "test_batch"}, "conv_impl": conv_impl})
    return config


def drnet_config(stage: int, sizes: dict[str, int], conv_impl: str = "auto") -> ml_collections.ConfigDict:
    """configs/drnet/moving_mnist.py resolved for `stage` (1 or 2), at `sizes` (ISSUE_SIZES['drnet']'s keys)."""
    from drnet_jax.config_defaults import stage_config

    spec = importlib.util.spec_from_file_location("drnet_mnist_config", REPO / "configs/drnet/moving_mnist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = stage_config(module.get_config("both"), stage)
    config.update({k: v for k, v in sizes.items() if k not in ("predict_batch", "predict_steps")})
    config.conv_impl = conv_impl
    return config


def resolve_sizes(smoke: bool, overrides: dict[str, dict[str, Any]]) -> dict[str, dict[str, int]]:
    """SMOKE_SIZES or ISSUE_SIZES, with the user's `overrides` ({'vdsm': {...}, 'drnet': {...}}) on top."""
    base = SMOKE_SIZES if smoke else ISSUE_SIZES
    return {model: {**sizes, **overrides.get(model, {})} for model, sizes in base.items()}
