"""The issue configurations every step benchmark times, defined once for the JAX and the torch side.

No JAX import here: benchmarks/vdsm_step.py sets XLA_FLAGS before JAX starts.
"""

from __future__ import annotations

import importlib.util
import pathlib

import ml_collections

REPO = pathlib.Path(__file__).resolve().parent.parent

# Issue 3: VDSM at bs 20, T 8, 64x64x3 frames, z_dim 30, n_e_w 15, rnn 512 x 3, dynamics_dim 50, one particle.
VDSM_ISSUE_CONFIG = dict(bs=20, seq_len=8, image_size=64, nc=3, z_dim=30, n_e_w=15, rnn_dim=512, rnn_layers=3,
                         dynamics_dim=50, num_particles=1)  # fmt: skip


def drnet_issue_config(stage: int) -> ml_collections.ConfigDict:
    """Issue 4: configs/drnet/moving_mnist.py resolved for `stage` (bs 100, 64 px, nc 3, dcgan_unet content,
    dcgan pose; stage 2: 10 + 10 frames, LSTM 256 x 2)."""
    from drnet_jax.config_defaults import stage_config

    spec = importlib.util.spec_from_file_location("drnet_mnist_config", REPO / "configs/drnet/moving_mnist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return stage_config(module.get_config("both"), stage)
