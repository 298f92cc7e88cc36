"""Run configs shared by both models: per-stage resolution and the metadata stored with each checkpoint.

Both packages' config files hold one flat ConfigDict for stage 1 plus a `stage2` block of the values
that differ when the same file runs stage 2 (learning rate, epochs, ...). `stage_config` resolves the
flat config a stage runs with; `run_meta` is the JSON stored beside every checkpoint (format tag,
stage, step, epoch, the resolved config and the input pipeline's iterator state), from which
`config_from_meta` rebuilds the config of a saved run.
"""

from __future__ import annotations

from typing import Any

import ml_collections

CONV_IMPLS = ("auto", "fast", "xla")  # config.conv_impl: vdcore.conv's formulations, 'auto' picks by backend


class ConfigValueError(ValueError):
    """A config value no run can use (the message names the field, the value and what is expected): bad input,
    which the commands report in one line."""


def check_ranges(
    config: ml_collections.ConfigDict,
    positive_ints: tuple[str, ...] = (),
    positive_floats: tuple[str, ...] = (),
    choices: dict[str, tuple[str, ...]] | None = None,
) -> None:
    """ConfigValueError naming the field, its value and what is expected, unless each of `positive_ints` is an int
    >= 1, each of `positive_floats` a number > 0 and each field of `choices` one of its values."""
    for name in positive_ints:
        value = config[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigValueError(f"config.{name} must be an integer >= 1, got {value!r}")
    for name in positive_floats:
        if not config[name] > 0:
            raise ConfigValueError(f"config.{name} must be > 0, got {config[name]!r}")
    for name, allowed in (choices or {}).items():
        if config[name] not in allowed:
            raise ConfigValueError(f"config.{name} must be one of {allowed}, got {config[name]!r}")


def check_keep_period(config: ml_collections.ConfigDict) -> None:
    """ConfigValueError unless config.keep_period (epochs; 0 = off) is >= 0 and a multiple of
    config.model_save_interval (only saved checkpoints can be kept)."""
    period, interval = config.keep_period, config.model_save_interval
    if isinstance(period, bool) or not isinstance(period, int) or period < 0:
        raise ConfigValueError(f"config.keep_period must be an integer >= 0 (epochs; 0 = off), got {period!r}")
    if period and period % interval:
        raise ConfigValueError(
            f"config.keep_period ({period} epochs) must be a multiple of config.model_save_interval ({interval}): "
            "only the checkpoints that are saved can be kept"
        )


def stage_config(config: ml_collections.ConfigDict, stage: int) -> ml_collections.ConfigDict:
    """The flat config one stage runs with: for stage 2 the `stage2` overrides replace the top-level values."""
    if stage not in (1, 2):
        raise ValueError(f"stage must be 1 or 2, got {stage!r}")
    resolved = ml_collections.ConfigDict(config.to_dict())
    if stage == 2:
        for key, value in config.stage2.items():
            if key not in resolved:
                raise ValueError(f"config.stage2.{key} overrides no known config field")
            resolved[key] = value
    resolved.stage = stage
    return resolved


def run_meta(
    meta_format: str, config: ml_collections.ConfigDict, step: int, steps_per_epoch: int, data_state: Any
) -> dict[str, Any]:
    """Checkpoint metadata: `step` optimiser steps done, `epoch` = step // steps_per_epoch complete epochs."""
    return {
        "format": meta_format,
        "stage": config.stage,
        "step": int(step),
        "epoch": int(step) // int(steps_per_epoch),
        "config": config.to_dict(),
        "data_state": data_state,
    }


def config_from_meta(meta: dict, defaults: ml_collections.ConfigDict | None = None) -> ml_collections.ConfigDict:
    """The config a run's checkpoint meta stores. With `defaults` (the model's base config), a setting the run's
    config lacks (added to the library after the run was written) takes its default, so older runs still load;
    every stored value is kept as it is."""
    stored = meta["config"]
    if defaults is None:
        return ml_collections.ConfigDict(stored)

    def merged(default: dict, saved: dict) -> dict:
        out = dict(default)
        for key, value in saved.items():
            both_blocks = isinstance(value, dict) and isinstance(default.get(key), dict)
            out[key] = merged(default[key], value) if both_blocks else value
        return out

    return ml_collections.ConfigDict(merged(defaults.to_dict(), stored))


def evaluation_config() -> ml_collections.ConfigDict:
    """The `evaluation` block of both models' run configs: evaluate the run when its last stage is trained
    (vdeval.after_training; off by default, on in the quickstarts)."""
    return ml_collections.ConfigDict(
        {
            "enabled": False,
            "judge": "",  # a trained judge's workdir; '' = train one into <data_dir>/judges/ on first use
            "judge_dataset_config": "",  # '' = the run's dataset config (another config of the same dataset: more clips)
            "judge_seq_len": 0,  # 0 = the last stage's seq_len (the length of the clips the model generates)
            "judge_steps": 1500,
            "judge_augment_strength": 0.0,  # > 0: random affine digit shapes while the judge trains (vdeval.judge_augment)
            "judge_centroid_crop": 0,  # > 0: the judge's CNN sees this wide a window about each frame's centre of mass
            "judge_convs_per_level": 1,  # convolutions per resolution level of the judge's frame CNN
            "judge_pool_frame_logits": False,  # identity heads also average their per-frame logits over the clip
            "seeds": (0, 1, 2),
            "max_clips": 400,
            "max_probe_clips": 1000,
            "horizon": 100,
            # Also evaluate every checkpoint the run kept (config.keep_period) into <workdir>/evaluation/curve:
            # accuracy against training time (vdeval.curve), with these seeds and clips (the probes fit on as many).
            "curve": False,
            "curve_seeds": (0,),
            "curve_max_clips": 100,
        }
    )
