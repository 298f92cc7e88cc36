"""VDSM on Sprites with the original README hyper-parameters (MUG-FED's, but n_e_w 40,
seq_len 16 in stage 1 — two actions of one character — and 8 in stage 2, 200 + 200 epochs).

    python -m data_prep.build sprites --data_dir data --lpc_dir path/to/lpc
    python -m vdsm_jax.main --config configs/vdsm/sprites.py:stage1 --workdir runs/sprites1
    python -m vdsm_jax.main --config configs/vdsm/sprites.py:stage2 --workdir runs/sprites2 \\
        --config.stage1_workdir runs/sprites1
"""

from vdsm_jax.config_defaults import base_config

STAGES = {"stage1": 1, "stage2": 2, "both": 0}


def get_config(stage: str = "stage1"):
    c = base_config()
    c.stage = STAGES[stage]
    c.dataset, c.dataset_config = "sprites", "standard"
    c.bs, c.seq_len = 20, 16
    c.z_dim, c.n_e_w, c.dynamics_dim = 30, 40, 50
    c.rnn_dim, c.rnn_layers, c.rnn_dropout = 512, 3, 0.2
    c.epochs, c.bs_per_epoch = 200, 50
    c.anneal_start_dynamics, c.anneal_end_dynamics = 0.1, 0.6
    c.test_temp_id = 10.0
    c.stage2.update({"epochs": 200, "bs_per_epoch": 50, "seq_len": 8})
    return c
