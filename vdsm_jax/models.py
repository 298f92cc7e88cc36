"""The VDSM networks of one configuration, their parameters, and deterministic paths.

`VDSMModules.from_config(config)` builds every network from the config's original
flag names; parameters are one dict with a key per network:
  'enc' (ImageEncoder), 'dec' (MoEDecoder), 'id_layers' — stage 1;
  plus 'seq_enc' (DynamicsEncoder: seq2seq_enc, cats, h_0_enc, c_0_enc),
  'seq_dec' (DynamicsDecoder: dz_to_dec_h/c, dec_inp_0, seq2seq_dec), 'comb',
  'transitions' and 'z_q_0' (Z,) — stage 2.
In stage 2 'enc' and 'dec' are frozen (kept out of the optimiser; gradients still
flow through them to the latents).

The deterministic paths here (encode, the inferred-dynamics chain, decoding) are
what the original's test-time code does; the stochastic model and guide are in
`objectives.py`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp

from vdcore.conv import resolve_impl
from vdsm_jax.networks import (
    Combiner,
    DynamicsDecoder,
    DynamicsEncoder,
    GatedTransition,
    IDLayers,
    ImageEncoder,
    MoEDecoder,
)

Params = dict[str, Any]
STAGE1_KEYS = ("enc", "dec", "id_layers")
STAGE2_TRAINED_KEYS = ("id_layers", "seq_enc", "seq_dec", "comb", "transitions", "z_q_0")
FROZEN_IN_STAGE2 = ("enc", "dec")


@dataclasses.dataclass(frozen=True)
class VDSMModules:
    z_dim: int
    n_e_w: int
    dynamics_dim: int
    rnn_dim: int
    rnn_layers: int
    rnn_dropout: float
    nc: int
    encoder_act_slope: float
    conv_impl: str
    decoder_conv_impl: str
    devices: int = 1

    @classmethod
    def from_config(cls, config: Any) -> VDSMModules:
        """The modules of `config`; the convolution formulations are decided here, once, from the backend and
        the device count, and every layer is handed the answer (the encoder groups its frames so that no group
        straddles two devices' shares of the batch).

        The decoder's per-sequence kernel blend uses the 'fast' formulation whenever the batch is split over
        several devices: XLA's SPMD partitioner cannot split the batch-grouped convolution that the 'xla'
        formulation's kernel gradient becomes ("output feature dimension ... divisible by
        feature_group_count" at compile time); the 'fast' one is matmuls, which it splits along the batch.
        """
        impl = resolve_impl(config.conv_impl)
        decoder_impl = "fast" if impl == "xla" and jax.device_count() > 1 else impl
        return cls(
            z_dim=config.z_dim,
            n_e_w=config.n_e_w,
            dynamics_dim=config.dynamics_dim,
            rnn_dim=config.rnn_dim,
            rnn_layers=config.rnn_layers,
            rnn_dropout=config.rnn_dropout,
            nc=config.nc,
            encoder_act_slope=config.encoder_act_slope,
            conv_impl=impl,
            decoder_conv_impl=decoder_impl,
            devices=jax.device_count(),
        )

    @property
    def encoder(self) -> ImageEncoder:
        return ImageEncoder(self.z_dim, self.n_e_w, self.encoder_act_slope, self.conv_impl, devices=self.devices)

    @property
    def decoder(self) -> MoEDecoder:
        return MoEDecoder(self.z_dim, self.n_e_w, self.nc, self.decoder_conv_impl)

    @property
    def id_layers(self) -> IDLayers:
        return IDLayers(self.n_e_w)

    @property
    def seq_enc(self) -> DynamicsEncoder:
        return DynamicsEncoder(self.dynamics_dim, self.rnn_dim, self.rnn_layers, self.rnn_dropout)

    @property
    def seq_dec(self) -> DynamicsDecoder:
        return DynamicsDecoder(self.rnn_dim, self.rnn_layers)

    @property
    def comb(self) -> Combiner:
        return Combiner(self.z_dim, self.rnn_dim)

    @property
    def transitions(self) -> GatedTransition:
        return GatedTransition(self.z_dim, self.rnn_dim)

    @functools.partial(jax.jit, static_argnames=("self", "stage", "image_size"))
    def init(self, rng: jax.Array, stage: int, image_size: int = 64) -> Params:
        """Fresh parameters of every network the stage uses (stage 2 includes the stage-1 networks).

        Compiled: XLA drops the forward passes flax runs to infer shapes (op by op, init takes ~10x longer)."""
        z, e, d, h = self.z_dim, self.n_e_w, self.dynamics_dim, self.rnn_dim
        keys = jax.random.split(rng, 8)
        frames = jnp.zeros((1, image_size, image_size, self.nc))
        params: Params = {
            "enc": self.encoder.init(keys[0], frames)["params"],
            "dec": self.decoder.init(keys[1], jnp.zeros((1, 1, z)), jnp.zeros((1, e)))["params"],
            "id_layers": self.id_layers.init(keys[2], jnp.zeros((1, 1, e)), jnp.zeros((1, 1, e)))["params"],
        }
        if stage == 2:
            params.update(
                seq_enc=self.seq_enc.init(keys[3], jnp.zeros((1, 2, z)))["params"],
                seq_dec=self.seq_dec.init(keys[4], jnp.zeros((1, d)), 2)["params"],
                comb=self.comb.init(keys[5], jnp.zeros((1, h)), jnp.zeros((1, d)), jnp.zeros((1, z)))["params"],
                transitions=self.transitions.init(keys[6], jnp.zeros((1, z)), jnp.zeros((1, d)))["params"],
                z_q_0=jnp.zeros((z,)),
            )
        elif stage != 1:
            raise ValueError(f"stage must be 1 or 2, got {stage!r}")
        return params

    # -- deterministic pieces ---------------------------------------------------------------------------------
    def encode_frames(self, params: Params, videos: jax.Array) -> tuple[jax.Array, ...]:
        """videos (B, T, H, W, C) → z_loc, z_scale (B, T, Z), id_loc, id_scale (B, E) after id_layers."""
        b, t = videos.shape[:2]
        z_loc, z_scale, id_loc, id_scale = self.encoder.apply(
            {"params": params["enc"]}, videos.reshape(b * t, *videos.shape[2:])
        )
        z_loc, z_scale = z_loc.reshape(b, t, -1), z_scale.reshape(b, t, -1)
        id_loc, id_scale = self.id_layers.apply(
            {"params": params["id_layers"]}, id_loc.reshape(b, t, -1), id_scale.reshape(b, t, -1)
        )
        return z_loc, z_scale, id_loc, id_scale

    def decode_logits(self, params: Params, z: jax.Array, weights: jax.Array) -> jax.Array:
        """z (B, T, Z), identity weights (B, E) on the simplex → pixel logits (B, T, H, W, C)."""
        return self.decoder.apply({"params": params["dec"]}, z, weights)

    def dynamics_posterior(
        self, params: Params, z_loc: jax.Array, deterministic: bool = True, rng: jax.Array | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """Per-frame z_loc (B, T, Z) → dz_loc, dz_scale (B, D)."""
        rngs = None if deterministic else {"dropout": rng}
        return self.seq_enc.apply({"params": params["seq_enc"]}, z_loc, deterministic=deterministic, rngs=rngs)

    def dynamics_rnn(self, params: Params, dz: jax.Array, seq_len: int) -> jax.Array:
        """dz (B, D) → the guide's LSTM outputs (B, T, H)."""
        return self.seq_dec.apply({"params": params["seq_dec"]}, dz, seq_len)

    def combiner_step(self, params: Params, lstm_out: jax.Array, dz: jax.Array, z_prev: jax.Array):
        return self.comb.apply({"params": params["comb"]}, lstm_out, dz, z_prev)

    def transition(self, params: Params, z_prev: jax.Array, dz: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self.transitions.apply({"params": params["transitions"]}, z_prev, dz)

    def latent_chain_from_dynamics(self, params: Params, dz: jax.Array, seq_len: int) -> jax.Array:
        """The original's `test_sequence` chain: z_t = combiner loc with z_prev = previous loc → (B, T, Z)."""
        lstm_out = self.dynamics_rnn(params, dz, seq_len)
        z0 = jnp.broadcast_to(params["z_q_0"], (dz.shape[0], self.z_dim))

        def step(z_prev, out_t):
            z_loc, _ = self.combiner_step(params, out_t, dz, z_prev)
            return z_loc, z_loc

        _, zs = jax.lax.scan(step, z0, jnp.swapaxes(lstm_out, 0, 1))
        return jnp.swapaxes(zs, 0, 1)

    def prior_chain(self, params: Params, dz: jax.Array, noise: jax.Array) -> jax.Array:
        """The prior's chain driven by standard-normal noise (B, T, Z): z_0 = noise_0 ~ N(0, 1),
        z_t = loc_t + scale_t · noise_t with (loc_t, scale_t) = transitions(z_{t-1}, dz) → (B, T, Z).

        Taking the noise rather than a key keeps every sequence a function of its own draws
        (the caller decides how they are drawn, e.g. one key per sequence).
        """

        def step(z_prev, noise_t):
            loc, scale = self.transition(params, z_prev, dz)
            z = loc + scale * noise_t
            return z, z

        z0 = noise[:, 0]
        _, zs = jax.lax.scan(step, z0, jnp.swapaxes(noise[:, 1:], 0, 1))
        return jnp.concatenate([z0[:, None], jnp.swapaxes(zs, 0, 1)], axis=1)


def identity_weights(id_value: jax.Array, temperature: float | jax.Array) -> jax.Array:
    """Blend weights on the simplex: softmax(temperature · ID) over the last axis."""
    return jax.nn.softmax(temperature * id_value, axis=-1)
