"""VDSM quickstart on the Moving MNIST digits bundled with the install (no downloads).

    python -m vdsm_jax.main --config configs/vdsm/quickstart.py --workdir runs/quickstart

Runs stage 1 and then stage 2 (`quickstart.py:stage1` or `:stage2` runs one) on
moving_mnist/quickstart_ids48 (one digit out of five fixed ones, drawn at 48 px in a
64 px frame, 16 frames; built into `data_dir` on first use), sized for 2 CPU cores
(with its judge and evaluation: 13 min 53 s from a fresh clone on a 2-core AVX-512 machine
at 480 GFLOP/s JAX sgemm, 2026-12-07; 35 minutes on one at 86 GFLOP/s). Identity = which
of the five digits, dynamics = its motion.

Against the README hyper-parameters it changes only sizes, lengths and learning rates;
the annealing schedules keep the original's defaults (anneal_t 30 -> 0.2 -> 0.4 -> 1,
temp_id 1 -> 10, test_temp_id 10). What makes a run this short disentangle:
- z_dim 2: the per-frame code has room for the digit's position and nothing else, so the
  shape can only go through the identity code (with z_dim 4 or 16 stage 1 put part of the
  shape into z, and stage 2's trajectories then decoded to smudges);
- 48 px digits: their 16 px range of positions is learnt in a few hundred steps (32 px
  digits over 32 px stayed blurred after 350 steps);
- stage 1 on 4-frame clips: twice the steps for the same frames (700 steps of 16 x 4
  frames separated all five digits; 350 steps of 16 x 8 frames merged them into two);
- learning rates raised for the short run: stage 1 3e-3, stage 2 1e-2.
"""

from vdsm_jax.config_defaults import base_config

STAGES = {"stage1": 1, "stage2": 2, "both": 0}


def get_config(stage: str = "both"):
    c = base_config()
    c.stage = STAGES[stage]
    c.dataset, c.dataset_config = "moving_mnist", "quickstart_ids48"
    c.bs, c.seq_len = 16, 4
    c.z_dim, c.n_e_w, c.dynamics_dim = 2, 10, 16
    c.rnn_dim, c.rnn_layers = 64, 1
    c.epochs, c.bs_per_epoch = 70, 10
    c.lr_VDSMEncDec = 3e-3
    c.model_save_interval, c.model_test_interval = 5, 70
    c.stage2.update(
        {
            "seq_len": 8,
            "epochs": 40,
            "bs_per_epoch": 10,
            "model_test_interval": 40,
            "temp_id_start": 10.0,
            "temp_id_end": 10.0,
            "lr_VDSMSeq": 1e-2,
        }
    )
    # Ends by printing the evaluation table (vdeval.after_training): a judge trained once on the real clips into
    # <data_dir>/judges/, then 3 seeds x 200 test clips per mode; its time is part of the quickstart's.
    c.evaluation.update({"enabled": True, "judge_steps": 1500, "max_clips": 200, "max_probe_clips": 500})
    return c
