"""VDSM on the procedural pendulum (pendulum/pendulum64: 60-frame swings, appearance vs dynamics).

The original's pendulum generator and hyper-parameters are unpublished; these are the
Sprites ones with 20-frame training windows and 15 experts (our choice).
"""

from vdsm_jax.config_defaults import base_config

STAGES = {"stage1": 1, "stage2": 2, "both": 0}


def get_config(stage: str = "stage1"):
    c = base_config()
    c.stage = STAGES[stage]
    c.dataset, c.dataset_config = "pendulum", "pendulum64"
    c.bs, c.seq_len = 20, 20
    c.z_dim, c.n_e_w, c.dynamics_dim = 30, 15, 50
    c.epochs, c.bs_per_epoch = 200, 50
    c.stage2.update({"epochs": 200, "bs_per_epoch": 50})
    return c
