"""VDSM's networks as Flax modules (Vowels, Camgoz & Bowden, "VDSM: Unsupervised Video Disentanglement with
State-Space Modeling and Deep Mixtures of Experts", CVPR 2021; shapes and wiring as the original's
`modules.py` / `VDSM.py`, github.com/matthewvowels1/DisentanglingSequences).

Shapes: B sequences, T frames, images (H, W, C) = (64, 64, nc) NHWC in [0, 1];
Z = z_dim, E = n_e_w (experts = identity dimension), D = dynamics_dim,
H = rnn_dim, L = rnn_layers.

Parameter names follow the original's state_dict keys where a torch module
maps to one Flax module (`muvar`, `BC_1`, `EW1`, `loc_layer`, `cats`, `comb`,
`transitions.lin_sig`, ...); convolutions hold HWIO kernels and Dense layers
(in, out) kernels (see vdcore/conv.py for the exact torch → JAX layouts).
Every default initialisation reproduces torch's.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from vdcore.conv import blur_pool, conv_transpose2d_mixture, default_impl
from vdcore.layers import Conv2D, torch_uniform_init
from vdcore.rnn import LSTM, LSTMLayerParams, lstm_feedback_stack

LEAKY_SLOPE = 0.01  # nn.LeakyReLU() default, used everywhere but the encoder's conv stack
ENCODER_CHANNELS = (32, 32, 64, 64, 256)
DECODER_CHANNELS = (512, 256, 128, 64)
# Frame groups of the encoder's conv stack on CPU. XLA:CPU runs each of these convs (YNNPACK) on one
# thread, and independent groups run concurrently: 4 groups of 40 frames made the encoder ~1.5x faster
# forward and ~1.4x forward+backward on the 2-core machine than one batch of 160 (python -m benchmarks.run --only vdsm_stage1).
ENCODER_CPU_FRAME_GROUPS = 4


class TorchDense(nn.Module):
    """torch nn.Linear: kernel (in, out), bias (out,), both U(±1/sqrt(in)) unless told otherwise."""

    features: int
    kaiming_normal: bool = False  # kaiming_normal_(weight) with zero bias, as VDSM's GatedTransition

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        if self.kaiming_normal:
            kernel_init = nn.initializers.normal(math.sqrt(2.0 / fan_in))
            bias_init = nn.initializers.zeros
        else:
            kernel_init = bias_init = torch_uniform_init(fan_in)
        kernel = self.param("kernel", kernel_init, (fan_in, self.features))
        bias = self.param("bias", bias_init, (self.features,))
        return x @ kernel + bias


def split_loc_scale(h: jax.Array, size: int) -> tuple[jax.Array, jax.Array]:
    """First `size` features are the location, softplus of the rest the scale."""
    return h[..., :size], jax.nn.softplus(h[..., size:])


def encoder_conv_impl(conv_impl: str | None, last: bool) -> str:
    """The conv implementation of one encoder layer for the configured `conv_impl` (None: the backend's default).

    'fast' (CPU) keeps the im2col dot for the last conv (a 4x4 map to 1x1, i.e. one dense matmul) and
    uses XLA's own convolution for the four stride-1 k4 convs on 64..8 px maps with 3..64 channels:
    there XLA:CPU's conv beats im2col + dot forward and backward (the im2col patches of these narrow layers
    are 16x the activations and the dots only 32-64 wide; benchmarks/README.md).
    'xla' uses XLA's conv everywhere (the reference).
    """
    impl = conv_impl or default_impl()
    return impl if (impl != "fast" or last) else "xla"


class ImageEncoder(nn.Module):
    """Per-frame encoder (`enc`): frames (N, 64, 64, nc) → z_loc, z_scale (N, Z), id_loc, id_scale (N, E).

    Five k4 s1 convs (p1, p1, p1, p1, p0) with BlurPool after the first four:
    64→63→32→31→16→15→8→7→4→1. `act_slope` is the LeakyReLU slope of the conv stack:
    the original passes `True` as negative_slope, i.e. 1.0 (the identity); kept as default.
    With the 'fast' (CPU) convolutions the frames run through the conv stack in
    up to ENCODER_CPU_FRAME_GROUPS independent groups of strided frames (same parameters; `_in_frame_groups`).
    """

    z_dim: int
    n_e_w: int
    act_slope: float = 1.0
    conv_impl: str | None = None
    devices: int = 1  # the frames are split over this many devices along N (data parallelism)

    @nn.compact
    def __call__(self, frames: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        convs = []
        for k, features in enumerate(ENCODER_CHANNELS):
            last = k == len(ENCODER_CHANNELS) - 1
            impl = encoder_conv_impl(self.conv_impl, last)
            convs.append(Conv2D(features, 4, stride=1, padding=0 if last else 1, impl=impl, name=f"conv{k}"))

        def conv_stack(h: jax.Array) -> jax.Array:
            for k, conv in enumerate(convs):
                h = nn.leaky_relu(conv(h), self.act_slope)
                if k < len(convs) - 1:
                    h = blur_pool(h, impl=self.conv_impl)
            return h

        h = _in_frame_groups(conv_stack, frames, self._frame_groups(frames.shape[0]))
        if h.shape[1:3] != (1, 1):
            raise ValueError(f"ImageEncoder expects 64x64 frames; got input {frames.shape[1:3]}, features {h.shape}")
        h = h.reshape(h.shape[0], -1)
        z_loc, z_scale = split_loc_scale(TorchDense(2 * self.z_dim, name="muvar")(h), self.z_dim)
        hid = nn.leaky_relu(TorchDense(128, name="BC_1")(h), LEAKY_SLOPE)
        id_loc, id_scale = split_loc_scale(TorchDense(2 * self.n_e_w, name="BC_2")(hid), self.n_e_w)
        return z_loc, z_scale, id_loc, id_scale

    def _frame_groups(self, num_frames: int) -> int:
        """With the 'fast' convolutions, the most groups up to ENCODER_CPU_FRAME_GROUPS that divide every device's
        share of the frames; otherwise 1."""
        groups = ENCODER_CPU_FRAME_GROUPS if (self.conv_impl or default_impl()) == "fast" else 1
        per_device = num_frames // self.devices if num_frames % self.devices == 0 else num_frames
        return math.gcd(groups, per_device)


def _in_frame_groups(apply: Callable[[jax.Array], jax.Array], frames: jax.Array, groups: int) -> jax.Array:
    """`apply` (per-frame) over frames (N, ...) in `groups` independent groups, N divisible by `groups`.

    Group i holds frames i, i + groups, i + 2 groups, ... (a reshape to (N / groups, groups, ...)), so that
    with the frames split over devices along N (data parallelism), every device keeps its own frames
    whenever its share divides by `groups`: contiguous groups (array_split) straddle the devices' shares
    and made XLA's partitioner move frames between devices (collective-permutes and all-to-alls in every
    step).
    """
    if groups == 1:
        return apply(frames)
    strided = frames.reshape(frames.shape[0] // groups, groups, *frames.shape[1:])
    out = jnp.stack([apply(strided[:, i]) for i in range(groups)], axis=1)
    return out.reshape(frames.shape[0], *out.shape[2:])


class IDLayers(nn.Module):
    """`id_layers`: per-frame (id_loc, id_scale) (B, T, E) → per-sequence (B, E) each (mean over time)."""

    n_e_w: int

    @nn.compact
    def __call__(self, id_loc: jax.Array, id_scale: jax.Array) -> tuple[jax.Array, jax.Array]:
        loc = nn.leaky_relu(TorchDense(self.n_e_w, name="loc_layer")(id_loc), LEAKY_SLOPE)
        scale = jax.nn.softplus(TorchDense(self.n_e_w, name="scale_layer")(id_scale))
        return loc.mean(axis=-2), scale.mean(axis=-2)


def moe_kernel_init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """torch kaiming_uniform_(a=√5) of the original's (E, Cin, Cout, 4, 4) tensor, stored as (E, 4, 4, Cin, Cout).

    torch takes fan_in = size(1) · prod(size(2:)) = Cin · Cout · 16 for that 5-D tensor, so the
    bound is 1/sqrt(Cin · Cout · 16); reproduced as such.
    """
    _, kh, kw, cin, cout = shape
    bound = 1.0 / math.sqrt(cin * cout * kh * kw)
    return jax.random.uniform(key, shape, dtype, -bound, bound)


class MoEDecoder(nn.Module):
    """Mixture-of-experts decoder (`dec`): z (B, T, Z) and blend weights w (B, E) → pixel logits (B, T, 64, 64, nc).

    Every layer's kernel and bias are the w-weighted sums of the experts' (`EW1..5`
    (E, 4, 4, Cin, Cout), `EB1..5` (E, Cout)); each sequence's frames run through its own
    blended kernels in one batched matmul per layer. Input per frame: concat(z_t, w) as a 1x1
    image. Layers: convT k4 s1 p0 (1→4) then four k4 s2 p1 (→64), LeakyReLU(0.01) between.
    Returns logits; the original's sigmoid output is `jax.nn.sigmoid(logits)` (the Bernoulli
    likelihood is evaluated from logits, which is the same distribution without log(0)).
    """

    z_dim: int
    n_e_w: int
    nc: int = 3
    conv_impl: str | None = None

    @nn.compact
    def __call__(self, z: jax.Array, weights: jax.Array) -> jax.Array:
        b, t, _ = z.shape
        channels = (self.z_dim + self.n_e_w, *DECODER_CHANNELS, self.nc)
        x = jnp.concatenate([z, jnp.broadcast_to(weights[:, None, :], (b, t, self.n_e_w))], axis=-1)
        x = x.reshape(b, t, 1, 1, channels[0])
        for layer in range(5):
            cin, cout = channels[layer], channels[layer + 1]
            experts_w = self.param(f"EW{layer + 1}", moe_kernel_init, (self.n_e_w, 4, 4, cin, cout))
            experts_b = self.param(f"EB{layer + 1}", nn.initializers.zeros, (self.n_e_w, cout))
            stride, padding = (1, 0) if layer == 0 else (2, 1)
            x = conv_transpose2d_mixture(
                x, weights, experts_w, experts_b, stride=stride, padding=padding, impl=self.conv_impl
            )
            if layer < 4:
                x = nn.leaky_relu(x, LEAKY_SLOPE)
        return x


class Combiner(nn.Module):
    """`comb`: one guide step. lstm_out (B, H), dz (B, D), z_prev (B, Z) → z_loc, z_scale (B, Z)."""

    z_dim: int
    rnn_dim: int

    @nn.compact
    def __call__(self, lstm_out: jax.Array, dz: jax.Array, z_prev: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = nn.leaky_relu(TorchDense(self.rnn_dim, name="h_rnn_to_hidden")(jnp.concatenate([lstm_out, dz], -1)))
        hc = 0.5 * (jnp.tanh(TorchDense(self.rnn_dim, name="lin_z_to_hidden")(z_prev)) + h)
        z_loc = TorchDense(self.z_dim, name="lin_hidden_to_loc")(hc)
        z_scale = jax.nn.softplus(TorchDense(self.z_dim, name="lin_hidden_to_scale")(hc))
        return z_loc, z_scale


class GatedTransition(nn.Module):
    """`transitions`, the prior p(z_t | z_{t-1}, dz): (..., Z), (..., D) → loc, scale (..., Z).

    Works on any leading shape, so the model can score all steps at once.
    Every Linear is kaiming-normal with zero bias (overriding lin_z_to_loc's identity init).
    """

    z_dim: int
    transition_dim: int

    @nn.compact
    def __call__(self, z_prev: jax.Array, dz: jax.Array) -> tuple[jax.Array, jax.Array]:
        dense = lambda n, name: TorchDense(n, kaiming_normal=True, name=name)
        zd = jnp.concatenate([z_prev, dz], axis=-1)
        gate = jax.nn.sigmoid(
            dense(self.z_dim, "lin_gate_hidden_to_z")(
                jax.nn.relu(dense(self.transition_dim, "lin_gate_z_to_hidden")(zd))
            )
        )
        proposed = dense(self.z_dim, "lin_proposed_mean_hidden_to_z")(
            jax.nn.relu(dense(self.transition_dim, "lin_proposed_mean_z_to_hidden")(zd))
        )
        loc = (1.0 - gate) * dense(self.z_dim, "lin_z_to_loc")(z_prev) + gate * proposed
        scale = jax.nn.softplus(dense(self.z_dim, "lin_sig")(jax.nn.relu(proposed)))
        return loc, scale


class DynamicsEncoder(nn.Module):
    """`seq2seq_enc` + `cats`: per-frame z_loc (B, T, Z) → dz_loc, dz_scale (B, D).

    A bidirectional L-layer LSTM (initial states the learned `h_0_enc`, `c_0_enc` (1, 1, H)
    broadcast to (2L, B, H)); its final hidden states in torch order (2L, B, H) are made
    batch-major and flattened to (B, 2L·H), then `cats` gives dz_loc = LeakyReLU(0.01)(first D)
    and dz_scale = softplus(last D).
    """

    dynamics_dim: int
    rnn_dim: int
    rnn_layers: int
    rnn_dropout: float = 0.0

    @nn.compact
    def __call__(self, z_seq: jax.Array, deterministic: bool = True) -> tuple[jax.Array, jax.Array]:
        b = z_seq.shape[0]
        shape = (2 * self.rnn_layers, b, self.rnn_dim)
        h0 = jnp.broadcast_to(self.param("h_0_enc", nn.initializers.zeros, (1, 1, self.rnn_dim)), shape)
        c0 = jnp.broadcast_to(self.param("c_0_enc", nn.initializers.zeros, (1, 1, self.rnn_dim)), shape)
        rnn = LSTM(self.rnn_dim, self.rnn_layers, bidirectional=True, dropout=self.rnn_dropout, name="seq2seq_enc")
        _, (h_n, _) = rnn(z_seq, (h0, c0), deterministic=deterministic)
        summary = jnp.swapaxes(h_n, 0, 1).reshape(b, -1)
        h = TorchDense(2 * self.dynamics_dim, name="cats")(summary)
        return nn.leaky_relu(h[:, : self.dynamics_dim], LEAKY_SLOPE), jax.nn.softplus(h[:, self.dynamics_dim :])


class DynamicsDecoder(nn.Module):
    """`dz_to_dec_h`, `dz_to_dec_c` and `seq2seq_dec`: dz (B, D) → LSTM outputs (B, T, H).

    The initial (h, c) of the unidirectional L-layer LSTM are Linear(D → L·H)(dz), (B, L·H),
    viewed as (B, L, H) and made layer-major (L, B, H): layer l of sequence b starts from the
    l-th H-sized chunk of sequence b's own vector, as the original's
    `dz_to_dec_h(dz).view(-1, L, H).permute(1, 0, 2)` (Vowels et al. 2021,
    github.com/matthewvowels1/DisentanglingSequences, `VDSM_Seq.guide` / `test_sequence`).
    Step 0's input is the learned `dec_inp_0` (H); every later step's input is the previous
    step's top-layer output.
    """

    rnn_dim: int
    rnn_layers: int

    @nn.compact
    def __call__(self, dz: jax.Array, seq_len: int) -> jax.Array:
        b = dz.shape[0]

        def initial_state(name: str) -> jax.Array:
            per_sequence = TorchDense(self.rnn_layers * self.rnn_dim, name=name)(dz)
            return jnp.swapaxes(per_sequence.reshape(b, self.rnn_layers, self.rnn_dim), 0, 1)

        h, c = initial_state("dz_to_dec_h"), initial_state("dz_to_dec_c")
        first_input = self.param("dec_inp_0", nn.initializers.zeros, (self.rnn_dim,))
        layers = [
            LSTMLayerParams(self.rnn_dim, self.rnn_dim, name=f"seq2seq_dec_l{k}")() for k in range(self.rnn_layers)
        ]
        x0 = jnp.broadcast_to(first_input, (b, self.rnn_dim))
        return lstm_feedback_stack(layers, (h, c), x0, seq_len)
