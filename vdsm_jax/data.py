"""What VDSM trains and draws its pictures on: the sampler of each stage, in one place.

Stage 1 learns the per-frame codes and the identity from clips of one identity: on Sprites two different
actions of one character (so the identity code cannot carry the action; Vowels et al., CVPR 2021, and the
original repository, github.com/matthewvowels1/DisentanglingSequences), elsewhere a window mirrored
left-right with probability `flip_prob` (the original's augmentation on MUG-FED: 0.5; 0 by default). Stage 2
learns the dynamics from plain windows. The fixed test clips are drawn like the training clips, never mirrored.
"""

from __future__ import annotations

from typing import Any

import ml_collections


def train_sampler(config: ml_collections.ConfigDict) -> tuple[str, dict[str, Any]]:
    """(data_prep sampler name, its arguments) of config.stage's training clips of config.seq_len frames."""
    if config.stage == 1 and config.dataset == "sprites":
        return "pair", {"group_by": "character", "distinct_by": "action", "seq_len": config.seq_len}
    if config.stage == 1:
        return "window", {"seq_len": config.seq_len, "flip_prob": config.flip_prob}
    return "window", {"seq_len": config.seq_len}


def picture_sampler(config: ml_collections.ConfigDict) -> tuple[str, dict[str, Any]]:
    """The training sampler of config.stage without mirroring (the pictures' fixed test clips)."""
    name, args = train_sampler(config)
    return name, {**args, "flip_prob": 0.0} if "flip_prob" in args else args
