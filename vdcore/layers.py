"""Flax linen conv layers over :mod:`vdcore.conv` (NHWC activations).

Parameters (names and layouts are relied on by the torch-checkpoint converter):

* ``Conv2D``: ``'kernel'`` HWIO ``(kh, kw, Cin, Cout)`` = torch ``Conv2d.weight.transpose(2, 3, 1, 0)``;
  ``'bias'`` ``(Cout,)``.
* ``ConvTranspose2D``: ``'kernel'`` ``(kh, kw, Cin, Cout)`` = torch
  ``ConvTranspose2d.weight.transpose(2, 3, 0, 1)`` (no flip; torch semantics); ``'bias'`` ``(Cout,)``.

Default initialisation reproduces torch's defaults, so an un-customised layer starts from the same
distribution as ``nn.Conv2d`` / ``nn.ConvTranspose2d``: weight and bias both
``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (what ``kaiming_uniform_(a=sqrt(5))`` amounts to), where
``fan_in = kh*kw*Cin`` for ``Conv2D`` and ``fan_in = kh*kw*Cout`` for ``ConvTranspose2D`` (torch
computes the transposed conv's fan from weight axis 1, which is Cout). DRNet overrides this with
``kernel_init=nn.initializers.normal(0.02)``, ``bias_init=nn.initializers.zeros``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from vdcore.conv import conv2d, conv_transpose2d

Initializer = Callable[[jax.Array, tuple[int, ...], Any], jax.Array]


def torch_uniform_init(fan_in: int) -> Initializer:
    """``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``: torch's default conv weight and bias initialisation."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _pair(name: str, value: int | tuple[int, int]) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v >= 1 for v in pair):
        raise ValueError(f"{name} must be a positive int or a pair of them, got {value!r}")
    return pair


class Conv2D(nn.Module):
    """torch ``nn.Conv2d(Cin, features, kernel_size, stride, padding, bias=use_bias)`` on NHWC input.

    Attributes:
      features: Cout.
      kernel_size: int or (kh, kw).
      stride, padding: ints, same along H and W (zero padding).
      use_bias: whether a ``'bias'`` parameter exists.
      impl: 'fast', 'xla' or None (= :func:`vdcore.conv.default_impl`).
      kernel_init, bias_init: None = torch default ``U(+-1/sqrt(kh*kw*Cin))``.
    """

    features: int
    kernel_size: int | tuple[int, int]
    stride: int = 1
    padding: int = 0
    use_bias: bool = True
    impl: str | None = None
    kernel_init: Initializer | None = None
    bias_init: Initializer | None = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """``(N, H, W, Cin)`` -> ``(N, Ho, Wo, features)``."""
        kh, kw = _pair("kernel_size", self.kernel_size)
        cin = x.shape[-1]
        default = torch_uniform_init(kh * kw * cin)
        kernel = self.param("kernel", self.kernel_init or default, (kh, kw, cin, self.features), self.param_dtype)
        bias = (
            self.param("bias", self.bias_init or default, (self.features,), self.param_dtype) if self.use_bias else None
        )
        return conv2d(x, kernel, bias, stride=self.stride, padding=self.padding, impl=self.impl)


class ConvTranspose2D(nn.Module):
    """torch ``nn.ConvTranspose2d(Cin, features, kernel_size, stride, padding, bias=use_bias)`` on NHWC input.

    Output size ``(H-1)*stride - 2*padding + kh``. Attributes as in :class:`Conv2D`; the default
    init is torch's, ``U(+-1/sqrt(kh*kw*features))``.
    """

    features: int
    kernel_size: int | tuple[int, int]
    stride: int = 1
    padding: int = 0
    use_bias: bool = True
    impl: str | None = None
    kernel_init: Initializer | None = None
    bias_init: Initializer | None = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """``(N, H, W, Cin)`` -> ``(N, Ho, Wo, features)``."""
        kh, kw = _pair("kernel_size", self.kernel_size)
        cin = x.shape[-1]
        default = torch_uniform_init(kh * kw * self.features)
        kernel = self.param("kernel", self.kernel_init or default, (kh, kw, cin, self.features), self.param_dtype)
        bias = (
            self.param("bias", self.bias_init or default, (self.features,), self.param_dtype) if self.use_bias else None
        )
        return conv_transpose2d(x, kernel, bias, stride=self.stride, padding=self.padding, impl=self.impl)
