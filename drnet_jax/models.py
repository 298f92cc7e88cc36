"""The DRNet networks of one configuration, their variables, and the deterministic paths built on them.

`DRNetModules.from_config(config)` builds every network from the config's original
flag names. Variables are two dicts keyed by network name:
  params:      'content_encoder' (EC), 'pose_encoder' (EP), 'decoder' (D),
               'scene_discriminator' (C) — stage 1; 'lstm' — stage 2;
  batch_stats: 'content_encoder', 'pose_encoder', 'decoder' (BatchNorm running averages).

BatchNorm mode is explicit everywhere (`train`): True normalises with the statistics of
the batch given and returns the updated running averages, False normalises with the
running averages (each example independent of the batch). The helpers that run a network
over a time axis (`pose_sequence`, `decode_sequence`) normalise each time step as its own
batch in train mode, as the originals' per-frame calls do.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from drnet_jax.networks import ContentEncoder, Decoder, PoseEncoder, PoseLSTM, SceneDiscriminator
from vdcore.conv import resolve_impl

Params = dict[str, Any]
BatchStats = dict[str, Any]
Skips = tuple[jax.Array, ...]
LSTMCarry = tuple[Any, jax.Array]  # (per-layer (h, c) state, the pose fed at the next step (B, pose_dim))
BN_NETWORKS = ("content_encoder", "pose_encoder", "decoder")
STAGE1_NETWORKS = (*BN_NETWORKS, "scene_discriminator")


def _lstm_init_call(module: PoseLSTM, inputs: jax.Array) -> tuple[jax.Array, Any]:
    return module(inputs, module.initial_state(inputs.shape[0]))


@dataclasses.dataclass(frozen=True)
class DRNetModules:
    content_model: str
    pose_model: str
    content_dim: int
    pose_dim: int
    channels: int
    image_width: int
    normalize: bool
    sd_nf: int
    rnn_size: int
    rnn_layers: int
    conv_impl: str

    @classmethod
    def from_config(cls, config: Any) -> DRNetModules:
        impl = resolve_impl(config.conv_impl)  # decided once, from the backend, for every layer
        return cls(
            content_model=config.content_model,
            pose_model=config.pose_model,
            content_dim=config.content_dim,
            pose_dim=config.pose_dim,
            channels=config.channels,
            image_width=config.image_width,
            normalize=bool(config.normalize),
            sd_nf=config.sd_nf,
            rnn_size=config.rnn_size,
            rnn_layers=config.rnn_layers,
            conv_impl=impl,
        )

    @property
    def content_encoder(self) -> ContentEncoder:
        return ContentEncoder(self.content_model, self.content_dim, self.image_width, False, self.conv_impl)

    @property
    def pose_encoder(self) -> PoseEncoder:
        return PoseEncoder(self.pose_model, self.pose_dim, self.image_width, self.normalize, self.conv_impl)

    @property
    def decoder(self) -> Decoder:
        return Decoder(
            self.content_model, self.content_dim, self.pose_dim, self.channels, self.image_width, self.conv_impl
        )

    @property
    def scene_discriminator(self) -> SceneDiscriminator:
        return SceneDiscriminator(self.pose_dim, self.sd_nf)

    @property
    def lstm(self) -> PoseLSTM:
        return PoseLSTM(self.content_dim, self.pose_dim, self.rnn_size, self.rnn_layers, self.normalize)

    # -- initialisation -------------------------------------------------------------------------------------------
    def init_stage1(self, rng: jax.Array) -> tuple[Params, BatchStats]:
        """Fresh EC, EP, D, C variables (the originals' init: N(0, 0.02) weights, BatchNorm scale N(1, 0.02))."""
        k_ec, k_ep, k_d, k_c = jax.random.split(rng, 4)
        s = self.image_width
        frames = jnp.zeros((2, s, s, self.channels))
        ec = self.content_encoder.init(k_ec, frames, train=False)
        ep = self.pose_encoder.init(k_ep, frames, train=False)
        h_c, skips = self.content_encoder.apply(ec, frames, train=False)
        h_p = jnp.zeros((2, self.pose_dim))
        dec = self.decoder.init(k_d, h_c, skips, h_p, train=False)
        sd = self.scene_discriminator.init(k_c, h_p, h_p)
        params = {
            "content_encoder": ec["params"],
            "pose_encoder": ep["params"],
            "decoder": dec["params"],
            "scene_discriminator": sd["params"],
        }
        batch_stats = {"content_encoder": ec["batch_stats"], "pose_encoder": ep["batch_stats"]}
        batch_stats["decoder"] = dec["batch_stats"]
        return params, batch_stats

    def init_lstm(self, rng: jax.Array) -> Params:
        """Fresh pose-LSTM parameters (torch's default LSTM init, N(0, 0.02) linear layers)."""
        inputs = jnp.zeros((1, self.content_dim + self.pose_dim))
        return self.lstm.init(rng, inputs, method=_lstm_init_call)["params"]

    # -- one network, BatchNorm-aware --------------------------------------------------------------------------------
    def _apply_bn(self, name: str, params: Params, batch_stats: BatchStats, *args: Any, train: bool):
        module = getattr(self, name)
        variables = {"params": params[name], "batch_stats": batch_stats[name]}
        if train:
            out, updates = module.apply(variables, *args, train=True, mutable=["batch_stats"])
            return out, {**batch_stats, name: updates["batch_stats"]}
        return module.apply(variables, *args, train=False), batch_stats

    def encode_content(
        self, params: Params, batch_stats: BatchStats, frames: jax.Array, train: bool = False
    ) -> tuple[tuple[jax.Array, Skips], BatchStats]:
        """frames (B, S, S, nc) → ((h_c (B, content_dim), skips), batch_stats after the call)."""
        return self._apply_bn("content_encoder", params, batch_stats, frames, train=train)

    def encode_pose(
        self, params: Params, batch_stats: BatchStats, frames: jax.Array, train: bool = False
    ) -> tuple[jax.Array, BatchStats]:
        """frames (B, S, S, nc) → (h_p (B, pose_dim), batch_stats after the call)."""
        return self._apply_bn("pose_encoder", params, batch_stats, frames, train=train)

    def decode(
        self,
        params: Params,
        batch_stats: BatchStats,
        h_c: jax.Array,
        skips: Skips,
        h_p: jax.Array,
        train: bool = False,
    ) -> tuple[jax.Array, BatchStats]:
        """h_c (B, content_dim), skips, h_p (B, pose_dim) → (frames (B, S, S, nc) in (0, 1), batch_stats)."""
        return self._apply_bn("decoder", params, batch_stats, h_c, skips, h_p, train=train)

    def discriminator_logits(self, params: Params, h_p1: jax.Array, h_p2: jax.Array) -> jax.Array:
        """C's pre-sigmoid output (B, 1): logit of 'the two poses come from different clips'."""
        return self.scene_discriminator.apply({"params": params["scene_discriminator"]}, h_p1, h_p2, True)

    # -- over a time axis (running averages never change here) ------------------------------------------------------
    def pose_sequence(
        self, params: Params, batch_stats: BatchStats, videos: jax.Array, train: bool = False
    ) -> jax.Array:
        """videos (B, T, S, S, nc) → poses (B, T, pose_dim); in train mode each frame index is its own batch.

        One frame index at a time (``lax.map``), in either mode: the convolutions' im2col patches of B frames
        stay small (those of all B·T frames at once run to gigabytes at the stage-2 benchmark size, and writing
        them slows the encoder down on CPU; benchmarks/README.md), and memory does not grow with T.
        """
        encode = lambda frames: self.encode_pose(params, batch_stats, frames, train)[0]
        return jnp.swapaxes(jax.lax.map(encode, jnp.swapaxes(videos, 0, 1)), 0, 1)

    def decode_sequence(
        self,
        params: Params,
        batch_stats: BatchStats,
        h_c: jax.Array,
        skips: Skips,
        poses: jax.Array,
        train: bool = False,
    ) -> jax.Array:
        """One content h_c (B, content_dim) + skips with poses (B, T, pose_dim) → videos (B, T, S, S, nc)."""
        decode = lambda h_p: self.decode(params, batch_stats, h_c, skips, h_p, train)[0]
        if train:
            return jax.vmap(decode, in_axes=1, out_axes=1)(poses)
        b, t = poses.shape[:2]
        repeat = lambda x: jnp.repeat(x, t, axis=0)
        frames, _ = self.decode(
            params, batch_stats, repeat(h_c), tuple(map(repeat, skips)), poses.reshape(b * t, -1), False
        )
        return frames.reshape(b, t, *frames.shape[1:])

    # -- the pose LSTM ------------------------------------------------------------------------------------------------
    def lstm_step(self, params: Params, state: Any, pose: jax.Array, h_c: jax.Array) -> tuple[jax.Array, Any]:
        """pred = LSTM(concat(pose, h_c)) for pose (B, pose_dim), h_c (B, content_dim) → (pred, new state)."""
        return self.lstm.apply({"params": params["lstm"]}, jnp.concatenate([pose, h_c], axis=-1), state)

    def lstm_teacher_forced(self, params: Params, poses: jax.Array, h_c: jax.Array) -> jax.Array:
        """Teacher forcing from a zero state: feed poses (B, T, pose_dim) → predictions (B, T, pose_dim), where
        prediction t = LSTM(concat(poses[:, t], h_c)) is the model's guess of the pose after poses[:, t]."""

        def step(state, pose):
            pred, state = self.lstm_step(params, state, pose, h_c)
            return state, pred

        _, preds = jax.lax.scan(step, self.lstm.initial_state(poses.shape[0]), jnp.swapaxes(poses, 0, 1))
        return jnp.swapaxes(preds, 0, 1)

    def lstm_condition(self, params: Params, poses: jax.Array, h_c: jax.Array) -> LSTMCarry:
        """Run the LSTM over observed poses 0..T-2 (B, T, pose_dim); the carry then predicts pose T."""

        def step(state, pose):
            _, state = self.lstm_step(params, state, pose, h_c)
            return state, None

        state, _ = jax.lax.scan(step, self.lstm.initial_state(poses.shape[0]), jnp.swapaxes(poses[:, :-1], 0, 1))
        return state, poses[:, -1]

    def lstm_rollout(self, params: Params, carry: LSTMCarry, h_c: jax.Array, steps: int) -> tuple[LSTMCarry, jax.Array]:
        """Feed each prediction back for `steps` steps → (carry, predicted poses (B, steps, pose_dim))."""

        def step(carry, _):
            state, pose = carry
            pred, state = self.lstm_step(params, state, pose, h_c)
            return (state, pred), pred

        carry, preds = jax.lax.scan(step, carry, None, length=steps)
        return carry, jnp.swapaxes(preds, 0, 1)
