"""Every VDSM run setting, with defaults; `configs/vdsm/*.py` override what they need.

Field names keep the original's flags for the same concepts (z_dim, n_e_w,
dynamics_dim, rnn_dim, rnn_layers, bs, seq_len, bs_per_epoch, epochs, the
schedule flags, test_temp_id, lr_VDSMEncDec, lr_VDSMSeq, lr_resume,
model_save_interval, model_test_interval, pretrained_model_VDSMEncDec).
An epoch is `bs_per_epoch` optimiser steps; schedules take one value per epoch.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from vdcore.run_config import CONV_IMPLS, ConfigValueError, check_keep_period, check_ranges, evaluation_config
from vdcore.run_config import stage_config as stage_config  # re-exported


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.stage = 1  # 1: EncDec (image networks), 2: Seq (dynamics networks on the frozen stage-1 networks)
    c.seed = 0

    # Data (data_prep): which built dataset, which split trains (explicit: the original trained MUG on its test split).
    c.dataset = "moving_mnist"
    c.dataset_config = "vdsm"
    c.data_dir = "data"
    c.manual_dir = ""  # manual files (sprites: the LPC sheets) for building the dataset on first use
    c.train_split = "train"
    c.test_split = "test"
    c.flip_prob = 0.0  # horizontal flips in stage 1 (the original: 0.5 on MUG)
    c.read_threads = 2
    c.prefetch = 2

    # Shapes.
    c.bs = 20
    c.seq_len = 8
    c.image_size = 64
    c.nc = 3
    c.z_dim = 30
    c.n_e_w = 15
    c.dynamics_dim = 50
    c.rnn_dim = 512
    c.rnn_layers = 3
    c.rnn_dropout = 0.2

    # Optimisation.
    c.epochs = 200
    c.bs_per_epoch = 50
    c.lr_VDSMEncDec = 1e-3
    c.lr_VDSMSeq = 1e-3
    c.lr_resume = config_dict.placeholder(float)  # replaces the lr when a run resumes from a checkpoint
    # Not in the original (one rate throughout): the lr is multiplied by lr_drop_factor at the start of each of
    # these epochs of the stage (counted from its first step; () = never).
    c.lr_drop_epochs = ()
    c.lr_drop_factor = 0.3
    c.num_particles = 1

    # Schedules (the original's per-epoch annealing arrays; vdsm_jax/schedules.py).
    c.temp_id_start = 1.0
    c.temp_id_end = 10.0
    c.temp_id_frac = 2.0
    c.anneal_start_id = 0.1
    c.anneal_end_id = 1.0
    c.anneal_frac_id = 3.0
    c.anneal_start_t = 30.0
    c.anneal_mid_t1 = 0.2
    c.anneal_mid_t2 = 0.4
    c.anneal_end_t = 1.0
    c.anneal_t_midfrac1 = 0.5
    c.anneal_t_midfrac2 = 0.8
    c.anneal_start_dynamics = 0.1
    c.anneal_end_dynamics = 0.6
    c.anneal_frac_dynamics = 3.0
    c.test_temp_id = 10.0

    # Faithful quirks, switchable.
    c.encoder_act_slope = 1.0  # the original's nn.LeakyReLU(True): slope 1.0, i.e. no nonlinearity
    # Where the evaluation's generated identities come from: 'original' = the original's prior N(0, 1/E), whose
    # draws blend all experts almost evenly; 'fitted' = a diagonal Gaussian fitted to the training clips' identity
    # posterior means (a remedy, not the original; vdsm_jax.api.IdentityPrior). Training is the same either way.
    c.identity_prior = "original"

    # Stage 2 starts from a stage-1 run: its workdir (or checkpoint directory) and epoch (-1: newest).
    c.stage1_workdir = ""
    c.pretrained_model_VDSMEncDec = -1

    # Kernels, robustness, outputs.
    c.conv_impl = "auto"  # 'fast' (im2col/polyphase matmuls, best on CPU), 'xla', or 'auto' (by backend)
    c.max_consecutive_nonfinite = 10
    c.debug_nans = False
    c.model_save_interval = 10  # epochs
    c.model_test_interval = 10  # epochs; 0 writes no pictures or code exports
    c.keep_checkpoints = 3
    # Epochs: the checkpoints at multiples of it are kept besides the newest keep_checkpoints (a multiple of
    # model_save_interval; 0 = none), so the accuracy-vs-training-time curve can be read from them (vdeval.curve).
    c.keep_period = 0
    c.log_every_steps = 10
    c.num_test_sequences = 8
    c.gif_fps = 10
    # Scored at the end of the command (vdeval.after_training: judge trained once, then the evaluate command).
    c.evaluation = evaluation_config()

    # What differs when the same config file runs stage 2 (applied by `stage_config`).
    c.stage2 = ml_collections.ConfigDict(
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
            "lr_drop_epochs": (),  # epochs differ between the stages, so the drops are set per stage
        }
    )
    return c


IDENTITY_PRIORS = ("original", "fitted")
POSITIVE_INTS = (
    "bs", "seq_len", "image_size", "nc", "z_dim", "n_e_w", "dynamics_dim", "rnn_dim", "rnn_layers",
    "epochs", "bs_per_epoch", "num_particles", "keep_checkpoints", "log_every_steps", "max_consecutive_nonfinite",
    "model_save_interval",
)  # fmt: skip
POSITIVE_FLOATS = ("lr_VDSMEncDec", "lr_VDSMSeq", "temp_id_start", "temp_id_end", "test_temp_id",
                   "temp_id_frac", "anneal_frac_id", "anneal_frac_dynamics")  # fmt: skip


def check_config(config: ml_collections.ConfigDict) -> None:
    """Raise ConfigValueError naming the field, its value and what is expected, for settings no run can use
    (called on the resolved stage config before any data, network or compile work)."""
    check_ranges(config, POSITIVE_INTS, POSITIVE_FLOATS, {"conv_impl": CONV_IMPLS, "identity_prior": IDENTITY_PRIORS})
    check_keep_period(config)
    if config.lr_resume is not None and not config.lr_resume > 0:
        raise ConfigValueError(f"config.lr_resume must be > 0 or None, got {config.lr_resume!r}")
    drops = tuple(config.lr_drop_epochs)
    if any(not isinstance(e, int) or e < 1 or e >= config.epochs for e in drops) or list(drops) != sorted(set(drops)):
        raise ConfigValueError(
            f"config.lr_drop_epochs must be increasing whole epochs in [1, epochs={config.epochs}), got {drops!r}"
        )
    if drops and not 0 < config.lr_drop_factor < 1:
        raise ConfigValueError(f"config.lr_drop_factor must be in (0, 1), got {config.lr_drop_factor!r}")
    if not 0 < config.anneal_t_midfrac1 < config.anneal_t_midfrac2 < 1:
        raise ConfigValueError(
            "config.anneal_t_midfrac1 and config.anneal_t_midfrac2 must satisfy 0 < midfrac1 < midfrac2 < 1, got "
            f"{config.anneal_t_midfrac1!r}, {config.anneal_t_midfrac2!r}"
        )
    if not 0 <= config.rnn_dropout < 1:
        raise ConfigValueError(f"config.rnn_dropout must be in [0, 1), got {config.rnn_dropout!r}")
    if not 0 <= config.flip_prob <= 1:
        raise ConfigValueError(f"config.flip_prob must be in [0, 1], got {config.flip_prob!r}")
    if config.model_test_interval < 0:
        raise ConfigValueError(
            f"config.model_test_interval must be >= 0 (epochs; 0 = never), got {config.model_test_interval!r}"
        )
