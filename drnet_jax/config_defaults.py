"""Every DRNet run setting, with defaults; `configs/drnet/*.py` override what they need.

Field names keep the original's flags (drnet-py `train_drnet.py` / `train_lstm.py`):
lr, beta1, batch_size, optimizer, niter (epochs), epoch_size (optimiser steps per
epoch), content_dim, pose_dim, image_width, channels, max_step, sd_weight, sd_nf,
content_model, pose_model, normalize, n_past, n_future, rnn_size, rnn_layers.
The defaults are the authors' stage-1 defaults on Moving MNIST at 64 px; `stage2`
holds what `train_lstm.py` sets differently (Adam lr 2e-4, beta1 0.9).
"""

from __future__ import annotations

import ml_collections

from data_prep.samplers import FourFrameSampler
from vdcore.run_config import CONV_IMPLS, ConfigValueError, check_keep_period, check_ranges, evaluation_config
from vdcore.run_config import stage_config as stage_config  # re-exported

OPTIMIZERS = ("adam", "rmsprop", "sgd")


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.stage = 1  # 1: content/pose encoders, decoder and scene discriminator; 2: the pose LSTM on frozen stage 1
    c.seed = 1  # the original's --seed default

    # Data (data_prep): which built dataset and splits.
    c.dataset = "moving_mnist"
    c.dataset_config = "drnet"
    c.data_dir = "data"
    c.manual_dir = ""  # manual files (kth: the .avi files) for building the dataset on first use
    c.train_split = "train"
    c.test_split = "test"
    c.frame_selection = "first4"  # stage-1 frames: 'first4' (Moving MNIST, the original) or 'random' (KTH)
    c.read_threads = 2
    c.prefetch = 2

    # Networks.
    c.image_width = 64  # 64 or 128
    c.channels = 3
    c.content_dim = 128
    c.pose_dim = 10
    c.content_model = "dcgan_unet"  # dcgan | dcgan_unet | vgg_unet
    c.pose_model = "dcgan"  # dcgan | resnet
    c.normalize = False  # L2-normalise pose vectors (encoder and LSTM output)
    c.sd_nf = 100
    c.rnn_size = 256
    c.rnn_layers = 2

    # Stage 1.
    c.max_step = 20  # the four frames come from a window of this many frames
    c.sd_weight = 1e-4

    # Stage 2.
    c.n_past = 10
    c.n_future = 10
    # The original keeps the frozen encoders (and the decoder of its pictures) in BatchNorm train mode during
    # stage 2: batch statistics, per frame. False normalises with the stage-1 running averages instead.
    c.frozen_bn_train_mode = True
    # 'encoder': the frozen encoders run over every stage-2 batch (the original). 'cached' (a deviation): their
    # codes of every training frame are computed once when stage 2 starts (drnet_jax.pose_codes) and the step is
    # the LSTM alone; needs frozen_bn_train_mode False (codes from the running averages, fixed per frame).
    c.pose_codes = "encoder"

    # Optimisation (both stages; `stage2` replaces lr and beta1).
    c.optimizer = "adam"  # adam | rmsprop | sgd
    c.lr = 0.002
    c.beta1 = 0.5
    c.batch_size = 100
    c.niter = 200
    c.epoch_size = 600

    # Stage 2 starts from a stage-1 run: its workdir (or checkpoints folder) and epoch (-1: newest).
    c.stage1_workdir = ""
    c.stage1_epoch = -1

    # Kernels, robustness, outputs.
    c.conv_impl = "auto"  # 'fast' (im2col/polyphase matmuls, best on CPU), 'xla', or 'auto' (by backend)
    c.max_consecutive_nonfinite = 10
    c.debug_nans = False
    c.model_save_interval = 1  # epochs (the original saves every epoch)
    c.model_test_interval = 1  # epochs (the original plots every epoch); 0 writes no pictures
    c.keep_checkpoints = 3
    # Epochs: the checkpoints at multiples of it are kept besides the newest keep_checkpoints (a multiple of
    # model_save_interval; 0 = none), so the accuracy-vs-training-time curve can be read from them (vdeval.curve).
    c.keep_period = 0
    c.log_every_steps = 10
    c.num_test_sequences = 10  # rows of the pictures (the original plots 10)
    c.gen_horizon = 200  # frames predicted after n_past for the long-generation GIF (stage 2)
    c.gen_chunk = 50  # frames per compiled generation chunk (device memory is one chunk, whatever the horizon)
    c.gif_fps = 10
    # Scored at the end of the command (vdeval.after_training: judge trained once, then the evaluate command).
    c.evaluation = evaluation_config()

    # What differs when the same config file runs stage 2 (applied by `stage_config`): train_lstm.py defaults.
    c.stage2 = ml_collections.ConfigDict({"lr": 2e-4, "beta1": 0.9, "niter": 200, "epoch_size": 600})
    return c


POSITIVE_INTS = (
    "image_width", "channels", "content_dim", "pose_dim", "sd_nf", "rnn_size", "rnn_layers", "batch_size",
    "niter", "epoch_size", "keep_checkpoints", "log_every_steps", "max_consecutive_nonfinite",
    "model_save_interval", "num_test_sequences", "gen_chunk",
)  # fmt: skip
POSITIVE_FLOATS = ("lr", "gif_fps")
POSE_CODES = ("encoder", "cached")
CHOICES = {
    "optimizer": OPTIMIZERS,
    "frame_selection": FourFrameSampler.SELECTIONS,
    "conv_impl": CONV_IMPLS,
    "pose_codes": POSE_CODES,
}


def check_config(config: ml_collections.ConfigDict) -> None:
    """Raise ConfigValueError naming the field for settings no run can use (before any data or compile work)."""
    check_ranges(config, POSITIVE_INTS, POSITIVE_FLOATS, CHOICES)
    check_keep_period(config)
    if config.batch_size < 2:
        raise ConfigValueError(
            f"config.batch_size must be >= 2 (the scene discriminator splits it in halves), got {config.batch_size}"
        )
    if config.stage == 1 and config.max_step < 4:
        raise ConfigValueError(f"config.max_step must be >= 4 (four frames per clip), got {config.max_step}")
    if config.stage == 2 and (config.n_past < 1 or config.n_future < 1):
        raise ConfigValueError(
            f"config.n_past and config.n_future must be >= 1, got {config.n_past}, {config.n_future}"
        )
    if config.stage == 2 and config.pose_codes == "cached" and config.frozen_bn_train_mode:
        raise ConfigValueError(
            "config.pose_codes='cached' computes each frame's codes once, with BatchNorm on the stage-1 running "
            "averages; set config.frozen_bn_train_mode=False too (batch statistics would change them every batch)"
        )
    if not 0 <= config.beta1 < 1:
        raise ConfigValueError(f"config.beta1 must be in [0, 1), got {config.beta1!r}")
    if config.sd_weight < 0:
        raise ConfigValueError(f"config.sd_weight must be >= 0, got {config.sd_weight!r}")
    if config.model_test_interval < 0:
        raise ConfigValueError(
            f"config.model_test_interval must be >= 0 (epochs; 0 = never), got {config.model_test_interval!r}"
        )
