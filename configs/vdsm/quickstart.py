"""VDSM quickstart on the Moving MNIST digits bundled with the install (no downloads).

    python -m vdsm_jax.main --config configs/vdsm/quickstart.py --workdir runs/quickstart

Runs stage 1 and then stage 2 (`quickstart.py:stage1` or `:stage2` runs one) on
moving_mnist/quickstart_ids (one digit out of five fixed ones, 64 px, 16 frames;
built into `data_dir` on first use), sized for about 10 minutes on 2 CPU cores.
Identity = which of the five digits, dynamics = its motion.

Against the README hyper-parameters it changes only sizes, lengths and learning
rates: the annealing schedules keep the original's defaults (anneal_t 30 -> 0.2 ->
0.4 -> 1, temp_id 1 -> 10, test_temp_id 10), which is what makes stage 1 route the
digit through the identity code rather than the per-frame z (with anneal_t
starting at 5 and temp_id 5 the identity code stayed unused). The learning rates
are raised (stage 1 3e-3, stage 2 1e-2) because the run is short: 350 + 400 steps.
"""

from vdsm_jax.config_defaults import base_config

STAGES = {"stage1": 1, "stage2": 2, "both": 0}


def get_config(stage: str = "both"):
    c = base_config()
    c.stage = STAGES[stage]
    c.dataset, c.dataset_config = "moving_mnist", "quickstart_ids"
    c.bs, c.seq_len = 16, 8
    c.z_dim, c.n_e_w, c.dynamics_dim = 16, 10, 16
    c.rnn_dim, c.rnn_layers = 64, 1
    c.epochs, c.bs_per_epoch = 35, 10
    c.lr_VDSMEncDec = 3e-3
    c.model_save_interval, c.model_test_interval = 5, 35
    c.stage2.update({"epochs": 40, "bs_per_epoch": 10, "temp_id_start": 10.0, "temp_id_end": 10.0, "lr_VDSMSeq": 1e-2})
    return c
