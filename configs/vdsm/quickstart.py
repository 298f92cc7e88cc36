"""VDSM quickstart on the Moving MNIST digits bundled with the install (no downloads).

    python -m vdsm_jax.main --config configs/vdsm/quickstart.py --workdir runs/quickstart

Runs stage 1 and then stage 2 (`quickstart.py:stage1` or `:stage2` runs one) on
moving_mnist/quickstart (1 digit, 64 px, 16 frames; built into `data_dir` on
first use), sized for about 15 minutes on 2 CPU cores. Identity = the digit and
its stroke, dynamics = its motion.
"""

from vdsm_jax.config_defaults import base_config

STAGES = {"stage1": 1, "stage2": 2, "both": 0}


def get_config(stage: str = "both"):
    c = base_config()
    c.stage = STAGES[stage]
    c.dataset, c.dataset_config = "moving_mnist", "quickstart"
    c.bs, c.seq_len = 16, 8
    c.z_dim, c.n_e_w, c.dynamics_dim = 16, 10, 16
    c.rnn_dim, c.rnn_layers = 64, 1
    c.epochs, c.bs_per_epoch = 20, 10
    c.temp_id_end, c.anneal_start_t = 5.0, 5.0
    c.model_save_interval, c.model_test_interval = 5, 10
    c.stage2.update({"epochs": 20, "bs_per_epoch": 10, "temp_id_start": 5.0, "temp_id_end": 5.0})
    c.test_temp_id = 5.0
    return c
