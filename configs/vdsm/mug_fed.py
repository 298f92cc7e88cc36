"""VDSM on MUG-FED with the original README hyper-parameters.

    python -m data_prep.build mug_fed --data_dir data --manual_dir path/to/mug
    python -m vdsm_jax.main --config configs/vdsm/mug_fed.py:stage1 --workdir runs/mug1
    python -m vdsm_jax.main --config configs/vdsm/mug_fed.py:stage2 --workdir runs/mug2 --config.stage1_workdir runs/mug1

The original trained both stages on its *test* split (a quirk); here the split is
explicit: `--config.train_split test --config.dataset_config original` reproduces it.
"""

from vdsm_jax.config_defaults import base_config

STAGES = {"stage1": 1, "stage2": 2, "both": 0}


def get_config(stage: str = "stage1"):
    c = base_config()
    c.stage = STAGES[stage]
    c.dataset, c.dataset_config = "mug_fed", "by_identity"
    c.flip_prob = 0.5
    c.bs, c.seq_len = 20, 20
    c.z_dim, c.n_e_w, c.dynamics_dim = 30, 15, 50
    c.rnn_dim, c.rnn_layers, c.rnn_dropout = 512, 3, 0.2
    c.epochs, c.bs_per_epoch = 250, 50
    c.lr_VDSMEncDec = c.lr_VDSMSeq = 1e-3
    c.temp_id_start, c.temp_id_end, c.temp_id_frac = 1.0, 10.0, 2.0
    c.anneal_start_id, c.anneal_end_id, c.anneal_frac_id = 0.1, 1.0, 3.0
    c.anneal_start_t, c.anneal_mid_t1, c.anneal_mid_t2, c.anneal_end_t = 30.0, 0.2, 0.4, 1.0
    c.anneal_t_midfrac1, c.anneal_t_midfrac2 = 0.5, 0.8
    c.anneal_start_dynamics, c.anneal_end_dynamics = 0.1, 0.6
    c.test_temp_id = 10.0
    c.gif_fps = 16
    c.stage2.update(
        {
            "epochs": 200,
            "bs_per_epoch": 2,
            "temp_id_start": 10.0,
            "temp_id_end": 10.0,
            "anneal_start_t": 0.1,
            "anneal_mid_t1": 0.4,
            "anneal_mid_t2": 0.4,
            "anneal_end_t": 1.0,
            "anneal_start_dynamics": 0.1,
            "anneal_end_dynamics": 1.0,
        }
    )
    return c
