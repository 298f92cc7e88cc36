"""VDSM on Moving MNIST (moving_mnist/vdsm: 2 coloured digits, 64 px, 16 frames).

The original publishes no Moving MNIST hyper-parameters; these are the Sprites ones
with 15 experts (our choice).
"""

from vdsm_jax.config_defaults import base_config

STAGES = {"stage1": 1, "stage2": 2, "both": 0}


def get_config(stage: str = "stage1"):
    c = base_config()
    c.stage = STAGES[stage]
    c.dataset, c.dataset_config = "moving_mnist", "vdsm"
    c.bs, c.seq_len = 20, 16
    c.z_dim, c.n_e_w, c.dynamics_dim = 30, 15, 50
    c.epochs, c.bs_per_epoch = 200, 50
    c.stage2.update({"epochs": 200, "bs_per_epoch": 50})
    return c
