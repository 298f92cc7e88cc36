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


def metrics_rows(workdir) -> dict[int, dict]:
    """<workdir>/metrics.jsonl by step; a step logged twice (before and after a resume) keeps its last row."""
    import json
    import os

    rows = {}
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            rows[row["step"]] = row
    return rows


def read_event_scalars(path) -> list[tuple[int, str, float]]:
    """(step, tag, value) of every scalar in a TensorBoard event file, checking each record's CRCs.

    An event file is a sequence of TFRecord frames (uint64 length, masked CRC-32C of it, payload, masked
    CRC-32C of the payload), each payload a serialized Event protobuf.
    """
    import struct

    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.record_writer import masked_crc32c

    data, offset, scalars = open(path, "rb").read(), 0, []
    while offset < len(data):
        header = data[offset : offset + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[offset + 8 : offset + 12])
        payload = data[offset + 12 : offset + 12 + length]
        (payload_crc,) = struct.unpack("<I", data[offset + 12 + length : offset + 16 + length])
        if header_crc != masked_crc32c(header) or payload_crc != masked_crc32c(payload):
            raise ValueError(f"{path}: corrupt record at byte {offset}")
        event = Event.FromString(payload)
        scalars += [(event.step, value.tag, value.simple_value) for value in event.summary.value]
        offset += 16 + length
    return scalars


def toy_loop_config(data_dir: str, **overrides) -> ml_collections.ConfigDict:
    """The fields vdcore.loop.run reads, for `toy_loop_model` on moving_mnist/smoke (24 training clips)."""
    config = ml_collections.ConfigDict(
        {
            "stage": 1,
            "dataset": "moving_mnist",
            "dataset_config": "smoke",
            "data_dir": data_dir,
            "manual_dir": "",
            "train_split": "train",
            "seed": 0,
            "read_threads": 0,
            "prefetch": 2,
            "bs": 4,
            "steps_per_epoch": 3,
            "epochs": 2,
            "debug_nans": False,
            "keep_checkpoints": 5,
            "model_save_interval": 1,
            "model_test_interval": 0,
            "log_every_steps": 1,
            "max_consecutive_nonfinite": 2,
            "poison_steps": (),
        }
    )
    config.update(overrides)
    return config


def toy_loop_model(config: ml_collections.ConfigDict, workdir: str):
    """A vdcore.loop.Model that compiles in a second: one weight w, loss (w · mean pixel of a clip - 0.5)²
    averaged over the batch, plain SGD; the batches of the steps (1-based) in config.poison_steps are NaN."""
    import os

    import jax
    import jax.numpy as jnp
    import optax

    from vdcore import loop, training
    from vdcore.checkpoint import CHECKPOINT_SUBDIR, Checkpointer
    from vdcore.train_state import TrainState, apply_gradients_if_finite

    tx = optax.sgd(0.1)

    def init():
        return TrainState.create({"w": jnp.ones(())}, tx, jax.random.key(config.seed))

    def train_step(state, videos):
        def loss_fn(params):
            return jnp.mean((params["w"] * videos.mean(axis=(1, 2, 3, 4)) - 0.5) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        state, finite = apply_gradients_if_finite(state, grads, loss, tx)
        return state, {"loss": loss, "w": state.params["w"], "finite": finite}

    def make_batches(num_devices):
        batches = training.make_train_batches(config, "window", {"seq_len": 2}, config.bs, num_devices)
        real_next, count = type(batches).__next__, {"n": 0}

        class Poisoned(type(batches)):
            def __next__(self):
                batch = real_next(self)
                count["n"] += 1
                if count["n"] in config.poison_steps:
                    batch["video"] = np.full_like(batch["video"], np.nan)
                return batch

        batches.__class__ = Poisoned
        return batches

    def restore(sharding):
        directory = os.path.join(workdir, CHECKPOINT_SUBDIR)
        return Checkpointer(directory).restore(jax.eval_shape(init), sharding=sharding)

    return loop.Model(
        name="toy",
        batch_field="bs",
        make_batches=make_batches,
        init_state=init,
        restore_state=restore,
        train_step=train_step,
        state_meta=lambda step, data_state: {
            "step": step,
            "epoch": step // config.steps_per_epoch,
            "data_state": data_state,
        },
        steps_per_epoch=config.steps_per_epoch,
        total_steps=config.steps_per_epoch * config.epochs,
        remedy="lower the learning rate",
        epoch_metrics=("loss",),
    )
