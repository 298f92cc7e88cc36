"""Small builders shared by tests."""

import types

import ml_collections
import numpy as np
import pytest

from vdsm_jax.models import VDSMModules


def tiny_modules(rnn_dropout: float = 0.0, conv_impl: str = "auto") -> VDSMModules:
    config = ml_collections.ConfigDict(
        {
            "z_dim": 4,
            "n_e_w": 3,
            "dynamics_dim": 5,
            "rnn_dim": 8,
            "rnn_layers": 2,
            "rnn_dropout": rnn_dropout,
            "nc": 3,
            "encoder_act_slope": 1.0,
            "conv_impl": conv_impl,
        }
    )
    return VDSMModules.from_config(config)


def poison_train_batches(monkeypatch: pytest.MonkeyPatch, train_module: types.ModuleType, clean: int) -> None:
    """Make ``train_module.make_train_batches`` yield all-NaN videos after its first ``clean`` batches."""
    real = train_module.make_train_batches

    def poisoned(config, num_devices):
        batches = real(config, num_devices)
        count = {"n": 0}
        original_next = type(batches).__next__

        class Poisoned(type(batches)):
            def __next__(self):
                batch = original_next(self)
                count["n"] += 1
                if count["n"] > clean:
                    batch["video"] = np.full_like(batch["video"], np.nan)
                return batch

        batches.__class__ = Poisoned
        return batches

    monkeypatch.setattr(train_module, "make_train_batches", poisoned)


def tiny_judge_config(data_dir: str, steps: int) -> ml_collections.ConfigDict:
    """A judge of moving_mnist/smoke small enough to train in seconds (vdeval.judge_train)."""
    from vdeval.judge_train import default_config

    config = default_config()
    config.update(
        dataset="moving_mnist",
        dataset_config="smoke",
        data_dir=data_dir,
        batch_size=8,
        steps=steps,
        lr=1e-2,
        width=8,
        hidden=16,
        frame_features=16,
        resolution=16,
        save_every=10,
        log_every=5,
        read_threads=0,
    )
    return config
