"""DRNet's networks as Flax modules (wiring: original DRNet (Denton & Birodkar, NeurIPS 2017; github.com/edenton/drnet-py), models/).

Shapes: frames are NHWC ``(B, S, S, nc)`` in [0, 1] with ``S = image_size`` in {64, 128};
content vectors ``(B, content_dim)``, pose vectors ``(B, pose_dim)``. nf = 64.

Every module with BatchNorm takes ``train`` (a static Python bool): True normalises with the batch statistics and
updates the running averages in the ``'batch_stats'`` collection (apply with
``mutable=['batch_stats']``); False normalises with the running averages, so each example's
output is independent of the rest of the batch. Every convolution takes ``conv_impl``
('fast' | 'xla' | None = :func:`vdcore.conv.default_impl`, i.e. the dot-based 'fast' path on CPU).

BatchNorm
---------
:class:`BatchNorm` reproduces torch ``BatchNorm2d``/``BatchNorm1d`` in training and eval mode,
including torch's running-variance rule: torch normalises with the *biased* batch variance but
folds the *unbiased* one (``* n/(n-1)``, n = elements per channel) into ``running_var``.
flax's ``nn.BatchNorm`` (0.12) folds the biased variance, so it cannot match torch's running
statistics; hence this module. Its variables carry flax's names: params ``scale`` (torch
``weight``), ``bias``; batch_stats ``mean`` (torch ``running_mean``), ``var`` (``running_var``).
``momentum`` is flax's convention (weight of the old average): torch's default 0.1 is 0.9 here;
``epsilon`` is torch's 1e-5. torch's ``num_batches_tracked`` is not kept (unused with a fixed
momentum).

Initialisation (as the originals' ``init_weights``)
---------------------------------------------------
Conv / transposed-conv / linear weights N(0, 0.02), biases 0; BatchNorm scale N(1, 0.02), bias 0;
running mean 0, running var 1. LSTM cells keep torch's default U(+-1/sqrt(H)) (vdcore.rnn).

Parameter names and the torch state_dict keys they come from
-------------------------------------------------------------
Layouts: conv kernels HWIO = torch ``Conv2d.weight.transpose(2, 3, 1, 0)``; transposed-conv
kernels ``(kh, kw, Cin, Cout)`` = torch ``ConvTranspose2d.weight.transpose(2, 3, 0, 1)`` (no flip);
Linear kernels ``(in, out)`` = torch ``weight.T``; ``kernel_ih`` = torch ``weight_ih.T`` (vdcore.rnn).
``n`` below is the number of down blocks: 4 at 64 px, 5 at 128 px.

* ``dcgan`` pose / content encoder (torch ``main`` Sequential): ``c{k}/conv``, ``c{k}/bn`` for
  k = 1..n <- ``main.{k-1}.main.0`` / ``main.{k-1}.main.1``; the head ``c{n+1}/conv``,
  ``c{n+1}/bn`` <- ``main.{n}`` / ``main.{n+1}``.
* ``dcgan_unet`` content encoder: ``c{k}/conv``, ``c{k}/bn`` <- ``c{k}.main.0`` / ``c{k}.main.1``;
  head ``c{n+1}/conv``, ``c{n+1}/bn`` <- ``c{n+1}.0`` / ``c{n+1}.1``.
* ``vgg_unet`` content encoder: ``c{k}/l{j}/conv``, ``c{k}/l{j}/bn`` <- ``c{k}.{j}.main.0`` /
  ``c{k}.{j}.main.1``; head as dcgan_unet.
* ``resnet`` pose encoder (torch ``main`` = the resnet18 module): ``conv1``, ``bn1`` <-
  ``main.conv1`` / ``main.bn1``; ``layer{i}/b{j}/{conv1,bn1,conv2,bn2}`` <-
  ``main.layer{i}.{j}.{conv1,bn1,conv2,bn2}``; ``layer{i}/b{j}/downsample_conv``,
  ``.../downsample_bn`` <- ``main.layer{i}.{j}.downsample.0`` / ``.downsample.1``;
  ``conv_out``, ``bn_out`` <- ``main.conv_out`` / ``main.bn_out``.
* ``dcgan`` decoder (torch ``main`` Sequential): ``upc1/conv``, ``upc1/bn`` <- ``main.0`` /
  ``main.1``; ``upc{k}/conv``, ``upc{k}/bn`` (k = 2..n) <- ``main.{k+1}.main.0`` / ``.main.1``;
  the output transposed conv ``upc{n+1}`` (``kernel``, ``bias``) <- ``main.{n+2}``.
* ``dcgan_unet`` decoder: ``upc1/conv``, ``upc1/bn`` <- ``upc1.0`` / ``upc1.1``; ``upc{k}/conv``,
  ``upc{k}/bn`` <- ``upc{k}.main.0`` / ``.main.1``; the output transposed conv ``upc{n+1}`` <- ``upc{n+1}.0``.
* ``vgg_unet`` decoder: ``upc1`` as dcgan_unet; ``upc{k}/l{j}/conv``, ``upc{k}/l{j}/bn`` <-
  ``upc{k}.{j}.main.0`` / ``.main.1``; the output transposed conv ``upc{n+1}/l1`` <- ``upc{n+1}.1``.
* Scene discriminator: ``fc1``, ``fc2``, ``fc3`` <- ``main.0``, ``main.2``, ``main.4``.
* Pose LSTM: ``embed`` <- ``embed``; ``lstm_l{k}`` <- ``lstm.{k}`` (``weight_ih`` / ``weight_hh`` /
  ``bias_ih`` / ``bias_hh``); ``output`` <- ``output.0``.

Choices where drnet.md is silent
--------------------------------
* ``resnet`` pose encoder: drnet-py's own resnet_64 network (stem conv k5 s2 p3 *with bias* + BN +
  ReLU + max-pool k3 s2 p1, BasicBlocks [2, 2, 2, 2], biased convs, 1x1 biased downsample + BN,
  ``conv_out`` over the remaining map + BN + tanh), not torchvision's k7 bias-free stem: it is
  what the authors trained, its head kernel (3 at 64 px) is exactly "the remaining spatial size",
  and its checkpoints map one-to-one. drnet-py's 128 px resnet imports a module missing from its
  repository, so at 128 px the same network is used (head kernel 5). Init as everywhere else:
  the originals' ``init_weights`` overrides resnet18's own He init with N(0, 0.02).
* 128 px: one more 512-wide block in every encoder / decoder, exactly drnet-py's ``*_128`` files.
* ``ContentEncoder.normalize`` (not in the originals) L2-normalises ``h_c`` like the pose switch.
* ``BatchNorm`` in training mode with a single value per channel raises (torch raises too).

Skip connections concatenate ``[decoder features, skip]`` along channels, in that order (the
originals' ``torch.cat([d, skip], 1)``); the decoders' first layer takes ``[h_c, h_p]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from vdcore.conv import default_impl, max_pool2d, upsample_nearest
from vdcore.layers import Conv2D, ConvTranspose2D
from vdcore.rnn import LSTMLayerParams, LSTMState, lstm_cell

NF = 64
LEAKY_SLOPE = 0.2
BN_MOMENTUM = 0.9  # flax convention (weight of the old average) for torch's momentum=0.1
BN_EPSILON = 1e-5  # torch's default
L2_EPSILON = 1e-12  # torch.nn.functional.normalize's default eps
IMAGE_SIZES = (64, 128)
POSE_MODELS = ("dcgan", "resnet")
CONTENT_MODELS = ("dcgan", "dcgan_unet", "vgg_unet")

# dcgan down-block widths; the 128 px variants add one more 512-wide block (128 -> 4 px in 5 blocks).
DCGAN_CHANNELS = {64: (NF, NF * 2, NF * 4, NF * 8), 128: (NF, NF * 2, NF * 4, NF * 8, NF * 8)}
# vgg_unet encoder stages (one width per conv3x3 layer), 2x2 max-pooling between stages.
VGG_ENCODER = {
    64: ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512)),
    128: ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
}
# vgg_unet decoder stages after upc1 (each preceded by 2x nearest upsampling and a skip concat);
# the last stage is followed by the conv-transpose 3x3 to nc and the sigmoid.
VGG_DECODER = {
    64: ((512, 512, 256), (256, 256, 128), (128, 64), (64,)),
    128: ((512, 512, 512), (512, 512, 256), (256, 256, 128), (128, 64), (64,)),
}
RESNET_WIDTHS = (64, 128, 256, 512)
RESNET_BLOCKS = (2, 2, 2, 2)
RESNET_STRIDES = (1, 2, 2, 2)
RESNET_STEM = dict(kernel=5, stride=2, padding=3)  # drnet-py's resnet_64 stem (torchvision's is k7 s2 p3)

weight_init = nn.initializers.normal(0.02)
zeros_init = nn.initializers.zeros


def bn_scale_init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
    """BatchNorm scale ~ N(1, 0.02), the originals' ``weight.data.normal_(1.0, 0.02)``."""
    return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def l2_normalize(x: jax.Array, eps: float = L2_EPSILON) -> jax.Array:
    """torch ``F.normalize(x, p=2, dim=-1)``: ``x / max(||x||_2, eps)`` over the last axis."""
    norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True))
    return x / jnp.maximum(norm, eps)


def _check_choice(owner: str, name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ValueError(f"{owner}: {name} must be one of {tuple(choices)}, got {value!r}")


def _check_frames(owner: str, x: jax.Array, image_size: int) -> None:
    if x.ndim != 4 or x.shape[1:3] != (image_size, image_size):
        raise ValueError(f"{owner}: expected frames (B, {image_size}, {image_size}, nc), got shape {tuple(x.shape)}")


class BatchNorm(nn.Module):
    """torch ``BatchNorm{1,2}d`` over the last (channel) axis; statistics over all other axes.

    ``train=True``: ``y = (x - mean_b) / sqrt(var_b + eps) * scale + bias`` with the batch mean and
    *biased* variance; unless initialising, ``mean <- m*mean + (1-m)*mean_b`` and
    ``var <- m*var + (1-m)*var_b*n/(n-1)`` (torch's unbiased update; n = elements per channel;
    like torch, n = 1 is an error). ``train=False``: normalises with ``mean`` / ``var``.
    """

    momentum: float = BN_MOMENTUM
    epsilon: float = BN_EPSILON

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        """``(..., C)`` -> ``(..., C)``."""
        features = x.shape[-1]
        scale = self.param("scale", bn_scale_init, (features,))
        bias = self.param("bias", zeros_init, (features,))
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((features,), jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((features,), jnp.float32))
        if train:
            axes = tuple(range(x.ndim - 1))
            n = 1
            for a in axes:
                n *= x.shape[a]
            mean = jnp.mean(x, axis=axes)
            var = jnp.mean(jnp.square(x - mean), axis=axes)
            if not self.is_initializing():
                if n < 2:
                    raise ValueError(
                        f"BatchNorm {'/'.join(self.path)}: training needs more than 1 value per channel, got input "
                        f"shape {tuple(x.shape)} (torch raises here too)"
                    )
                m = self.momentum
                ra_mean.value = m * ra_mean.value + (1.0 - m) * mean
                ra_var.value = m * ra_var.value + (1.0 - m) * var * (n / (n - 1))
        else:
            mean, var = ra_mean.value, ra_var.value
        return (x - mean) * (scale * jax.lax.rsqrt(var + self.epsilon)) + bias


class Linear(nn.Module):
    """torch ``nn.Linear`` with the originals' init: kernel ``(in, out)`` ~ N(0, 0.02), bias 0."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """``(..., in)`` -> ``(..., features)``."""
        kernel = self.param("kernel", weight_init, (x.shape[-1], self.features))
        bias = self.param("bias", zeros_init, (self.features,))
        return x @ kernel + bias


def _conv(features: int, kernel: int, stride: int, padding: int, impl: str | None, name: str) -> Conv2D:
    return Conv2D(
        features, kernel, stride, padding, impl=impl, kernel_init=weight_init, bias_init=zeros_init, name=name
    )


def _conv_t(features: int, kernel: int, stride: int, padding: int, impl: str | None, name: str) -> ConvTranspose2D:
    return ConvTranspose2D(
        features, kernel, stride, padding, impl=impl, kernel_init=weight_init, bias_init=zeros_init, name=name
    )


class ConvBN(nn.Module):
    """conv (or transposed conv) -> BatchNorm -> activation; children ``conv`` and ``bn``.

    ``dcgan_conv`` = (k4, s2, p1, 'leaky'), ``dcgan_upconv`` = the same with ``transpose=True``,
    ``vgg_layer`` = (k3, s1, p1, 'leaky'); heads use k = remaining spatial size, p0, 'tanh'.
    """

    features: int
    kernel: int
    stride: int
    padding: int
    activation: str = "leaky"  # 'leaky' (LeakyReLU 0.2) | 'tanh'
    transpose: bool = False
    conv_impl: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        """``(B, H, W, Cin)`` -> ``(B, Ho, Wo, features)``."""
        make = _conv_t if self.transpose else _conv
        h = make(self.features, self.kernel, self.stride, self.padding, self.conv_impl, "conv")(x)
        h = BatchNorm(name="bn")(h, train)
        if self.activation == "leaky":
            return nn.leaky_relu(h, LEAKY_SLOPE)
        if self.activation == "tanh":
            return jnp.tanh(h)
        raise ValueError(f"ConvBN: unknown activation {self.activation!r}")


class VGGStage(nn.Module):
    """A run of ``vgg_layer``s (conv3x3 -> BN -> LeakyReLU(0.2)), children ``l0``, ``l1``, ..."""

    widths: tuple[int, ...]
    conv_impl: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        """``(B, H, W, Cin)`` -> ``(B, H, W, widths[-1])``."""
        return _vgg_layers(x, self.widths, self.conv_impl, train)


def _vgg_layers(x: jax.Array, widths: Sequence[int], conv_impl: str | None, train: bool) -> jax.Array:
    """``vgg_layer`` j = conv3x3 p1 -> BN -> LeakyReLU(0.2), named ``l{j}`` in the calling module."""
    for j, width in enumerate(widths):
        x = ConvBN(width, 3, 1, 1, conv_impl=conv_impl, name=f"l{j}")(x, train)
    return x


# ----------------------------------------------------------------------------------------------------------------------
# Bodies. These are plain functions called inside a module's compact ``__call__``: the submodules they create
# attach to that module, so the parameter tree has no extra nesting level (names as in the module docstring).
# ----------------------------------------------------------------------------------------------------------------------


def _head(features: int, h: jax.Array, conv_impl: str | None, name: str, train: bool) -> jax.Array:
    """conv over the whole remaining map (kernel = its size, p0) -> BN -> tanh, flattened to ``(B, features)``."""
    size = h.shape[1]
    if h.shape[2] != size:
        raise ValueError(f"{name}: the head expects a square feature map, got {tuple(h.shape)}")
    out = ConvBN(features, size, 1, 0, activation="tanh", conv_impl=conv_impl, name=name)(h, train)
    return out.reshape(out.shape[0], features)


def dcgan_encoder_conv_impl(conv_impl: str | None) -> str:
    """The conv implementation of the dcgan encoders' k4 s2 blocks and head for the configured `conv_impl`.

    'fast' (the CPU default) uses XLA's own convolution there: measured 2026-12-07 (jax 0.10.2, 2-core AVX-512,
    `python -m benchmarks.drnet_parts`), forward + backward of the 64 px dcgan_unet content and dcgan pose
    encoders at batch 32 took 0.079 / 0.071 s with XLA's conv against 0.091 / 0.090 s with im2col + dot, and a
    stage-1 step 0.44 s against 0.49 s (1.40 against 1.49 s at batch 100), compiling in half the time. The
    decoders' transposed convs keep the 'fast' sub-pixel dots (XLA's took 2.9 s against 0.19 s there).
    """
    impl = conv_impl or default_impl()
    return "xla" if impl == "fast" else impl


def _dcgan_encoder(
    x: jax.Array, dim: int, image_size: int, conv_impl: str | None, train: bool
) -> tuple[jax.Array, tuple[jax.Array, ...]]:
    """``dcgan_conv`` blocks ``c1..cn`` (S -> 4 px), then the head ``c{n+1}`` (4 -> 1 px, BN, tanh).

    Returns ``(B, dim)`` and the block outputs ``(h1, ..., hn)``: S/2, S/4, ..., 4 px with widths
    :data:`DCGAN_CHANNELS` (64 px: 32/64, 16/128, 8/256, 4/512; 128 px adds 4/512 after 8/512).
    Convolutions: `dcgan_encoder_conv_impl`.
    """
    conv_impl = dcgan_encoder_conv_impl(conv_impl)
    skips = []
    h = x
    for k, width in enumerate(DCGAN_CHANNELS[image_size], start=1):
        h = ConvBN(width, 4, 2, 1, conv_impl=conv_impl, name=f"c{k}")(h, train)
        skips.append(h)
    return _head(dim, h, conv_impl, f"c{len(skips) + 1}", train), tuple(skips)


def _vgg_encoder(
    x: jax.Array, dim: int, image_size: int, conv_impl: str | None, train: bool
) -> tuple[jax.Array, tuple[jax.Array, ...]]:
    """``vgg_unet`` encoder: VGG stages ``c1..cn`` with 2x2 max-pooling between, head ``c{n+1}``.

    Stage k runs at S / 2^(k-1) px; the head sees the last stage max-pooled to 4 px. Returns
    ``(B, dim)`` and the stage outputs ``(h1, ..., hn)`` before pooling: S, S/2, ..., 8 px
    (64 px: 64/64, 32/128, 16/256, 8/512; 128 px: 128/64, 64/128, 32/256, 16/512, 8/512).
    """
    skips = []
    h = x
    for k, widths in enumerate(VGG_ENCODER[image_size], start=1):
        if k > 1:
            h = max_pool2d(h, window=2, impl=conv_impl)
        h = VGGStage(widths, conv_impl=conv_impl, name=f"c{k}")(h, train)
        skips.append(h)
    h = max_pool2d(h, window=2, impl=conv_impl)
    return _head(dim, h, conv_impl, f"c{len(skips) + 1}", train), tuple(skips)


class BasicBlock(nn.Module):
    """ResNet BasicBlock: conv3x3(stride) -> BN -> ReLU -> conv3x3 -> BN, plus the shortcut, ReLU.

    The shortcut is ``downsample_conv`` (1x1, stride) -> ``downsample_bn`` when the stride or the width
    changes, else the identity. Convs carry biases, as drnet-py's resnet_64 ``conv3x3`` does.
    """

    features: int
    stride: int = 1
    conv_impl: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        """``(B, H, W, Cin)`` -> ``(B, ceil(H/stride), ceil(W/stride), features)``."""
        out = _conv(self.features, 3, self.stride, 1, self.conv_impl, "conv1")(x)
        out = nn.relu(BatchNorm(name="bn1")(out, train))
        out = _conv(self.features, 3, 1, 1, self.conv_impl, "conv2")(out)
        out = BatchNorm(name="bn2")(out, train)
        residual = x
        if self.stride != 1 or x.shape[-1] != self.features:
            residual = _conv(self.features, 1, self.stride, 0, self.conv_impl, "downsample_conv")(x)
            residual = BatchNorm(name="downsample_bn")(residual, train)
        return nn.relu(out + residual)


class ResLayer(nn.Module):
    """``blocks`` BasicBlocks named ``b0, b1, ...``; the first one carries the stride."""

    features: int
    blocks: int
    stride: int
    conv_impl: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        """``(B, H, W, Cin)`` -> ``(B, ceil(H/stride), ceil(W/stride), features)``."""
        for j in range(self.blocks):
            stride = self.stride if j == 0 else 1
            x = BasicBlock(self.features, stride, conv_impl=self.conv_impl, name=f"b{j}")(x, train)
        return x


def _resnet_encoder(x: jax.Array, dim: int, conv_impl: str | None, train: bool) -> jax.Array:
    """drnet-py's ``resnet18`` pose network (models/resnet_64.py), also used at 128 px.

    Stem ``conv1`` k5 s2 p3 (nc -> 64, with bias) -> ``bn1`` -> ReLU -> max-pool k3 s2 p1; layers
    ``layer1..layer4`` of BasicBlocks [2, 2, 2, 2] at widths 64, 128, 256, 512 (strides 1, 2, 2, 2);
    then ``conv_out`` (512 -> dim, kernel = the remaining spatial size, p0, bias) -> ``bn_out`` -> tanh.
    Spatial sizes: 64 px: 64 -> 33 -> 17 -> 17, 9, 5, 3 -> head k3 (the original's ``conv_out``
    kernel_size=3); 128 px: 128 -> 65 -> 33 -> 33, 17, 9, 5 -> head k5.
    """
    stem = RESNET_STEM
    h = _conv(RESNET_WIDTHS[0], stem["kernel"], stem["stride"], stem["padding"], conv_impl, "conv1")(x)
    h = nn.relu(BatchNorm(name="bn1")(h, train))
    h = max_pool2d(h, window=3, stride=2, padding=1, impl=conv_impl)
    for i, (width, blocks, stride) in enumerate(zip(RESNET_WIDTHS, RESNET_BLOCKS, RESNET_STRIDES, strict=True)):
        h = ResLayer(width, blocks, stride, conv_impl=conv_impl, name=f"layer{i + 1}")(h, train)
    h = _conv(dim, h.shape[1], 1, 0, conv_impl, "conv_out")(h)
    h = jnp.tanh(BatchNorm(name="bn_out")(h, train))
    return h.reshape(h.shape[0], dim)


class VGGOutputStage(nn.Module):
    """The vgg_unet decoder's last stage: vgg_layers ``l0..l{m-1}`` (``widths``), then ``l{m}`` = convT k3 s1 p1 -> nc."""

    widths: tuple[int, ...]
    nc: int
    conv_impl: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        """``(B, S, S, Cin)`` -> pre-sigmoid ``(B, S, S, nc)``."""
        h = _vgg_layers(x, self.widths, self.conv_impl, train)
        return _conv_t(self.nc, 3, 1, 1, self.conv_impl, f"l{len(self.widths)}")(h)


# ----------------------------------------------------------------------------------------------------------------------
# The networks of the interface.
# ----------------------------------------------------------------------------------------------------------------------


class PoseEncoder(nn.Module):
    """EP: frames ``(B, S, S, nc)`` in [0, 1] -> pose ``(B, pose_dim)`` in (-1, 1).

    ``model``: 'dcgan' (dcgan_conv blocks ``c1..cn`` + head ``c{n+1}``, n = 4 at 64 px, 5 at 128 px)
    or 'resnet' (drnet-py's ResNet-18 variant, see :func:`_resnet_encoder`). The output is the tanh
    of the final conv + BN, L2-normalised over pose_dim when ``normalize``.
    """

    model: str
    pose_dim: int
    image_size: int = 64
    normalize: bool = False
    conv_impl: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        """``(B, S, S, nc)`` -> ``(B, pose_dim)``."""
        _check_choice("PoseEncoder", "model", self.model, POSE_MODELS)
        _check_choice("PoseEncoder", "image_size", self.image_size, IMAGE_SIZES)
        _check_frames("PoseEncoder", x, self.image_size)
        if self.model == "dcgan":
            h_p, _ = _dcgan_encoder(x, self.pose_dim, self.image_size, self.conv_impl, train)
        else:
            h_p = _resnet_encoder(x, self.pose_dim, self.conv_impl, train)
        return l2_normalize(h_p) if self.normalize else h_p


class ContentEncoder(nn.Module):
    """EC: frames ``(B, S, S, nc)`` -> ``(h_c (B, content_dim), skips)``.

    ``model``: 'dcgan' (skips ``()``), 'dcgan_unet' (same layers; skips = the n dcgan_conv block
    outputs h1..hn at S/2 .. 4 px), 'vgg_unet' (VGG stages; skips = the n stage outputs at S .. 8 px).
    n = 4 at 64 px, 5 at 128 px. ``h_c`` is the tanh of the head conv + BN, L2-normalised when
    ``normalize`` (the originals' content encoders have no such switch; default off).
    """

    model: str
    content_dim: int
    image_size: int = 64
    normalize: bool = False
    conv_impl: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, tuple[jax.Array, ...]]:
        """``(B, S, S, nc)`` -> ``((B, content_dim), skips)``."""
        _check_choice("ContentEncoder", "model", self.model, CONTENT_MODELS)
        _check_choice("ContentEncoder", "image_size", self.image_size, IMAGE_SIZES)
        _check_frames("ContentEncoder", x, self.image_size)
        if self.model == "vgg_unet":
            h_c, skips = _vgg_encoder(x, self.content_dim, self.image_size, self.conv_impl, train)
        else:
            h_c, skips = _dcgan_encoder(x, self.content_dim, self.image_size, self.conv_impl, train)
            if self.model == "dcgan":
                skips = ()
        return (l2_normalize(h_c) if self.normalize else h_c), skips


def expected_skip_shapes(model: str, image_size: int) -> tuple[tuple[int, int, int], ...]:
    """(H, W, C) of each skip ``h1..hn`` that ``ContentEncoder(model, ..., image_size)`` returns."""
    _check_choice("expected_skip_shapes", "model", model, CONTENT_MODELS)
    _check_choice("expected_skip_shapes", "image_size", image_size, IMAGE_SIZES)
    if model == "dcgan":
        return ()
    if model == "dcgan_unet":
        return tuple((image_size >> k, image_size >> k, c) for k, c in enumerate(DCGAN_CHANNELS[image_size], 1))
    return tuple((image_size >> k, image_size >> k, s[-1]) for k, s in enumerate(VGG_ENCODER[image_size]))


class Decoder(nn.Module):
    """D: content ``h_c (B, content_dim)`` (+ skips) and pose ``h_p (B, pose_dim)`` -> frames ``(B, S, S, nc)``.

    'dcgan': ``upc1`` = convT(content+pose -> 512, k4 s1 p0) -> BN -> LeakyReLU(0.2) (1 -> 4 px),
    dcgan_upconv ``upc2..upcn`` (64 px: 512 -> 256 -> 128 -> 64; 128 px: 512 -> 512 -> 256 -> 128 -> 64),
    ``upc{n+1}`` = convT(64 -> nc, k4 s2 p1) -> sigmoid.
    'dcgan_unet': the same, every block after ``upc1`` fed ``concat([features, skip])`` (channels
    doubled), deepest skip first. 'vgg_unet': ``upc1`` as above, then per stage 2x nearest
    upsampling, skip concat and vgg_layers (:data:`VGG_DECODER`); the last stage ends in convT
    k3 s1 p1 (64 -> nc) and the sigmoid. ``skips`` must be what the matching
    :class:`ContentEncoder` returned (``()`` for 'dcgan').
    """

    model: str
    content_dim: int
    pose_dim: int
    nc: int = 3
    image_size: int = 64
    conv_impl: str | None = None

    @nn.compact
    def __call__(self, h_c: jax.Array, skips: Sequence[jax.Array], h_p: jax.Array, train: bool) -> jax.Array:
        """``(B, content_dim)``, skips, ``(B, pose_dim)`` -> ``(B, S, S, nc)`` in (0, 1)."""
        _check_choice("Decoder", "model", self.model, CONTENT_MODELS)
        _check_choice("Decoder", "image_size", self.image_size, IMAGE_SIZES)
        if h_c.ndim != 2 or h_c.shape[-1] != self.content_dim:
            raise ValueError(f"Decoder: h_c must be (B, {self.content_dim}), got shape {tuple(h_c.shape)}")
        if h_p.shape != (h_c.shape[0], self.pose_dim):
            raise ValueError(f"Decoder: h_p must be ({h_c.shape[0]}, {self.pose_dim}), got shape {tuple(h_p.shape)}")
        skips = tuple(skips)
        want = expected_skip_shapes(self.model, self.image_size)
        got = tuple(tuple(s.shape[1:]) for s in skips)
        if got != want or any(s.shape[0] != h_c.shape[0] for s in skips):
            raise ValueError(
                f"Decoder({self.model!r}, image_size={self.image_size}): skips must have shapes (B, H, W, C) with "
                f"(H, W, C) = {want} and B = {h_c.shape[0]}, got {tuple(tuple(s.shape) for s in skips)}"
            )
        x = jnp.concatenate([h_c, h_p], axis=-1)[:, None, None, :]
        n = len(DCGAN_CHANNELS[self.image_size])
        if self.model == "vgg_unet":
            h = ConvBN(512, 4, 1, 0, transpose=True, conv_impl=self.conv_impl, name="upc1")(x, train)
            stages = VGG_DECODER[self.image_size]
            for k, widths in enumerate(stages, start=2):
                h = jnp.concatenate([upsample_nearest(h, 2), skips[n + 1 - k]], axis=-1)
                if k <= n:
                    h = VGGStage(widths, conv_impl=self.conv_impl, name=f"upc{k}")(h, train)
                else:
                    h = VGGOutputStage(widths, self.nc, conv_impl=self.conv_impl, name=f"upc{k}")(h, train)
            return jax.nn.sigmoid(h)
        widths = DCGAN_CHANNELS[self.image_size][::-1]
        h = ConvBN(widths[0], 4, 1, 0, transpose=True, conv_impl=self.conv_impl, name="upc1")(x, train)
        for k in range(2, n + 2):
            if skips:
                h = jnp.concatenate([h, skips[n + 1 - k]], axis=-1)
            if k <= n:
                h = ConvBN(widths[k - 1], 4, 2, 1, transpose=True, conv_impl=self.conv_impl, name=f"upc{k}")(h, train)
            else:
                h = _conv_t(self.nc, 4, 2, 1, self.conv_impl, f"upc{k}")(h)
        return jax.nn.sigmoid(h)


class SceneDiscriminator(nn.Module):
    """C: two pose batches ``(B, pose_dim)`` -> probability ``(B, 1)`` that they come from different clips.

    ``concat([h_p1, h_p2])`` -> ``fc1`` (2*pose_dim -> sd_nf) -> ReLU -> ``fc2`` (sd_nf -> sd_nf) -> ReLU
    -> ``fc3`` (sd_nf -> 1) -> sigmoid. ``return_logits=True`` returns the pre-sigmoid logits instead
    (for a numerically stable BCE: ``optax.sigmoid_binary_cross_entropy``).
    """

    pose_dim: int
    sd_nf: int = 100

    @nn.compact
    def __call__(self, h_p1: jax.Array, h_p2: jax.Array, return_logits: bool = False) -> jax.Array:
        """``(B, pose_dim)`` x2 -> ``(B, 1)``."""
        for name, h in (("h_p1", h_p1), ("h_p2", h_p2)):
            if h.ndim != 2 or h.shape[-1] != self.pose_dim:
                raise ValueError(f"SceneDiscriminator: {name} must be (B, {self.pose_dim}), got {tuple(h.shape)}")
        x = jnp.concatenate([h_p1, h_p2], axis=-1)
        x = nn.relu(Linear(self.sd_nf, name="fc1")(x))
        x = nn.relu(Linear(self.sd_nf, name="fc2")(x))
        logits = Linear(1, name="fc3")(x)
        return logits if return_logits else jax.nn.sigmoid(logits)


class PoseLSTM(nn.Module):
    """Stage-2 pose predictor, one time step: ``(B, content_dim + pose_dim)`` and state -> ``(B, pose_dim)``.

    ``embed`` Linear(content_dim + pose_dim -> rnn_size), ``rnn_layers`` stacked LSTM cells
    ``lstm_l{k}`` of width rnn_size (torch LSTMCell parameterisation and init), ``output``
    Linear(rnn_size -> pose_dim) -> tanh, L2-normalised when ``normalize``. The caller builds the
    input (drnet.md: ``concat(h_p[t-1], h_c)``) and scans this step over time; the state is a
    tuple of ``(h, c)`` pairs, one per layer, each ``(B, rnn_size)``.
    """

    content_dim: int
    pose_dim: int
    rnn_size: int = 256
    rnn_layers: int = 2
    normalize: bool = False

    def initial_state(self, batch: int) -> tuple[LSTMState, ...]:
        """Zero ``(h, c)`` per layer, each ``(batch, rnn_size)`` float32 (the originals reset per batch)."""
        zeros = jnp.zeros((batch, self.rnn_size), jnp.float32)
        return tuple((zeros, zeros) for _ in range(self.rnn_layers))

    @nn.compact
    def __call__(self, inputs: jax.Array, state: Sequence[LSTMState]) -> tuple[jax.Array, tuple[LSTMState, ...]]:
        """One step: inputs ``(B, content_dim + pose_dim)`` -> ``(pred (B, pose_dim), new_state)``."""
        width = self.content_dim + self.pose_dim
        if inputs.ndim != 2 or inputs.shape[-1] != width:
            raise ValueError(f"PoseLSTM: inputs must be (B, {width}), got shape {tuple(inputs.shape)}")
        if len(state) != self.rnn_layers:
            raise ValueError(f"PoseLSTM: state must hold {self.rnn_layers} (h, c) pairs, got {len(state)}")
        h = Linear(self.rnn_size, name="embed")(inputs)
        new_state = []
        for k in range(self.rnn_layers):
            params = LSTMLayerParams(self.rnn_size, self.rnn_size, name=f"lstm_l{k}")()
            h, c = lstm_cell(params, h, tuple(state[k]))
            new_state.append((h, c))
        pred = jnp.tanh(Linear(self.pose_dim, name="output")(h))
        return (l2_normalize(pred) if self.normalize else pred), tuple(new_state)
