"""What DRNet trains and draws its pictures on: the sampler of each stage, in one place.

Stage 1 (Denton & Birodkar, NeurIPS 2017; the original repository github.com/edenton/drnet-py) takes four
frames of one clip within `max_step` frames: two content frames, two pose frames. Stage 2 trains the LSTM on
windows of n_past + n_future frames. Stage-1 pictures show whole `max_step`-frame windows; stage-2 pictures
the training windows.
"""

from __future__ import annotations

from typing import Any

import ml_collections


def train_sampler(config: ml_collections.ConfigDict) -> tuple[str, dict[str, Any]]:
    """(data_prep sampler name, its arguments) of config.stage's training examples."""
    if config.stage == 1:
        return "four_frames", {"max_step": config.max_step, "frame_selection": config.frame_selection}
    return "window", {"seq_len": config.n_past + config.n_future}


def picture_sampler(config: ml_collections.ConfigDict) -> tuple[str, dict[str, Any]]:
    """The sampler of the fixed test clips the pictures are made from."""
    if config.stage == 1:
        return "window", {"seq_len": config.max_step}
    return train_sampler(config)
