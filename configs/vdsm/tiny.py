"""A tiny VDSM for tests and smoke runs (moving_mnist/smoke, built on first use; seconds per stage).

python -m vdsm_jax.main --config configs/vdsm/tiny.py --workdir runs/tiny
"""

from vdsm_jax.config_defaults import base_config

STAGES = {"stage1": 1, "stage2": 2, "both": 0}


def get_config(stage: str = "both"):
    c = base_config()
    c.stage = STAGES[stage]
    c.dataset, c.dataset_config = "moving_mnist", "smoke"
    c.bs, c.seq_len = 2, 3
    c.z_dim, c.n_e_w, c.dynamics_dim = 4, 3, 5
    c.rnn_dim, c.rnn_layers, c.rnn_dropout = 8, 2, 0.2
    c.epochs, c.bs_per_epoch = 6, 1
    c.model_save_interval, c.model_test_interval = 2, 6
    c.log_every_steps = 1
    c.num_test_sequences = 2
    c.read_threads = 0
    c.stage2.update({"epochs": 6, "bs_per_epoch": 1})
    return c
