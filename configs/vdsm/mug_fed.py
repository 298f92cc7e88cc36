"""VDSM on MUG-FED with the original README hyper-parameters.

    python -m data_prep.build mug_fed --data_dir data --manual_dir path/to/mug
    python -m vdsm_jax.main --config configs/vdsm/mug_fed.py:stage1 --workdir runs/mug1
    python -m vdsm_jax.main --config configs/vdsm/mug_fed.py:stage2 --workdir runs/mug2 --config.stage1_workdir runs/mug1

The defaults in vdsm_jax/config_defaults.py are the MUG-FED README values (bs 20,
epochs 250 / 200, bs_per_epoch 50 / 2, z_dim 30, n_e_w 15, dynamics_dim 50, rnn 512×3,
dropout 0.2, lr 1e-3, temp_id 1→10, anneal_id 0.1→1, anneal_t 30→0.2→0.4→1 and, in
stage 2, temp_id 10, anneal_t 0.1→0.4→0.4→1, anneal_dynamics 0.1→1); this file sets the
rest. The original trained both stages on its *test* split (a quirk); here the split is
explicit: `--config.train_split test --config.dataset_config original` reproduces it.
"""

from vdsm_jax.config_defaults import base_config

STAGES = {"stage1": 1, "stage2": 2, "both": 0}


def get_config(stage: str = "stage1"):
    c = base_config()
    c.stage = STAGES[stage]
    c.dataset, c.dataset_config = "mug_fed", "by_identity"
    c.flip_prob = 0.5
    c.seq_len = 20
    c.epochs = 250
    c.gif_fps = 16
    return c
