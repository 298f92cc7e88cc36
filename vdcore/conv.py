"""Convolution primitives shared by the VDSM and DRNet reimplementations.

Layouts (a torch-checkpoint converter depends on these; do not change them)
----------------------------------------------------------------------------
* Activations are NHWC: ``(batch, height, width, channels)``.
* ``conv2d`` kernels are HWIO: ``(kh, kw, Cin, Cout)``.
  From a torch ``Conv2d.weight`` of shape ``(Cout, Cin, kh, kw)``:
  ``w.transpose(2, 3, 1, 0)``  (see :func:`kernel_from_torch_conv`).
* ``conv_transpose2d`` kernels are ``(kh, kw, Cin, Cout)`` where Cin is the
  channel count of the transposed conv's *input*.  From a torch
  ``ConvTranspose2d.weight`` of shape ``(Cin, Cout, kh, kw)``:
  ``w.transpose(2, 3, 0, 1)`` -- a plain transpose, the kernel is NOT flipped
  (see :func:`kernel_from_torch_conv_transpose`).  The op then computes exactly
  ``torch.nn.functional.conv_transpose2d(x, w, stride=s, padding=p)``: the
  adjoint of ``conv2d`` with the same kernel, i.e. the scatter-add

      out[i*s - p + a, j*s - p + b, o] += x[i, j, c] * w[a, b, c, o]

  with output size ``(H - 1)*s - 2p + kh`` (torch's ``output_padding=0``).
* Biases are ``(Cout,)``; per-example biases ``(B, Cout)``.

Implementations (the ``impl`` argument)
---------------------------------------
``'xla'``
    ``lax.conv_general_dilated`` (with ``lhs_dilation`` for transposed convs,
    which is what ``lax.conv_transpose`` lowers to), ``lax.reduce_window``.
    The right choice on GPU/TPU, and the numerical reference.
``'fast'``
    Formulations that keep XLA:CPU on its fast path, the dot product
    (XLA:CPU's conv is 2-3x slower than torch and its transposed conv ~20x
    slower; benchmarks/conv_kernels.py measures both):

    * conv2d: im2col (kh*kw strided slices + one concatenate) and ONE dot.
    * conv_transpose2d: sub-pixel decompositions, exact for every (k, s, p).
      For output row ``z = y + p = q*s + r`` only the taps ``a = r + s*j``
      contribute, with input row ``q - j`` (``J = ceil(k/s)`` taps per phase).
      'polyphase': one im2col of ``J x J`` windows over the input padded by
      ``J-1`` and ONE dot with a rearranged ``(J*J*Cin, s*s*Cout)`` kernel yield
      every output phase; depth-to-space and a crop finish.  For k4 s2 p1 this
      is the four 2x2 convs (one per output parity) fused into one dot.
      'scatter': ONE dot of the input with a ``(Cin, k*k*Cout)`` kernel gives
      each pixel's contribution, then J*J shifted adds (overlap-add) on the
      phase grid.  Chosen per shape (scatter for small maps or few output
      channels, e.g. the 64->3 output layers; see _conv_transpose_formulation).
      A 1x1 spatial input (the decoders' first layer) is a single dot.
    * blur_pool: two separable 1-D strided passes (no conv).
    * max_pool2d: elementwise max over strided slices.

    ``default_impl()`` picks ``'fast'`` on the CPU backend, ``'xla'`` elsewhere.

Gradients of the 'fast' formulations come from JAX autodiff: the adjoint of
im2col is a sum of padded slices and the adjoint of the dot is two dots, so
the backward pass also stays on the dot path.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

IMPLS: tuple[str, ...] = ("xla", "fast")

_NHWC = ("NHWC", "HWIO", "NHWC")
# antialiased_cnns BlurPool, filt_size=4: outer([1,3,3,1], [1,3,3,1]) / 64, i.e. [1,3,3,1]/8 per axis.
BLUR_TAPS_1D: tuple[float, ...] = (1 / 8, 3 / 8, 3 / 8, 1 / 8)
# Reflect padding (top/left, bottom/right) of antialiased_cnns BlurPool with filt_size=4.
BLUR_PAD: tuple[int, int] = (1, 2)


def default_impl() -> str:
    """'fast' on the CPU backend (where XLA's conv is slow and its dot fast), 'xla' on GPU/TPU.

    On CPU 'fast' wins at the models' batch sizes, most for transposed convs; on tiny batches XLA's
    own conv is faster for plain convs, but those calls are cheap anyway (benchmarks/README.md).
    """
    return "fast" if jax.default_backend() == "cpu" else "xla"


def resolve_impl(requested: str | None) -> str:
    """The formulation a model runs with for a config's `conv_impl`: 'auto', '' or None is decided here from the
    backend (:func:`default_impl`). Models call this once when they are built and pass the answer down to every
    layer, so no layer decides by itself."""
    if requested in (None, "", "auto"):
        return default_impl()
    return _resolve_impl(requested)


def _resolve_impl(impl: str | None) -> str:
    if impl is None:
        return default_impl()
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS} or None, got {impl!r}")
    return impl


def _check_int(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


# ----------------------------------------------------------------------------------------------------------------------
# Layout helpers for checkpoint conversion.
# ----------------------------------------------------------------------------------------------------------------------


def kernel_from_torch_conv(w: np.ndarray | jax.Array) -> np.ndarray | jax.Array:
    """torch ``Conv2d`` weight ``(..., Cout, Cin, kh, kw)`` -> HWIO ``(..., kh, kw, Cin, Cout)``.

    Leading axes (e.g. an expert axis) are kept in front. A pure transpose.
    """
    return _swap_last4(w, (2, 3, 1, 0))


def kernel_from_torch_conv_transpose(w: np.ndarray | jax.Array) -> np.ndarray | jax.Array:
    """torch ``ConvTranspose2d`` weight ``(..., Cin, Cout, kh, kw)`` -> ``(..., kh, kw, Cin, Cout)``.

    A pure transpose, NO spatial flip: :func:`conv_transpose2d` applies torch's
    semantics to the kernel as stored. Leading axes (e.g. VDSM's expert axis of
    ``EW1..EW5``, ``(E, Cin, Cout, 4, 4)``) are kept in front.
    """
    return _swap_last4(w, (2, 3, 0, 1))


def _swap_last4(w, perm: tuple[int, int, int, int]):
    if w.ndim < 4:
        raise ValueError(f"expected a kernel with at least 4 axes, got shape {tuple(w.shape)}")
    lead = tuple(range(w.ndim - 4))
    axes = lead + tuple(len(lead) + a for a in perm)
    return w.transpose(axes)


# ----------------------------------------------------------------------------------------------------------------------
# im2col.
# ----------------------------------------------------------------------------------------------------------------------


def _pad_hw(x: jax.Array, pad_h: tuple[int, int], pad_w: tuple[int, int], value: float = 0.0) -> jax.Array:
    if pad_h == (0, 0) and pad_w == (0, 0):
        return x
    return lax.pad(x, jnp.asarray(value, x.dtype), ((0, 0, 0), (*pad_h, 0), (*pad_w, 0), (0, 0, 0)))


def _window_slices(x: jax.Array, kh: int, kw: int, stride: int) -> tuple[list[jax.Array], int, int]:
    """All kh*kw strided views of an (already padded) NHWC array, in (a, b) row-major order."""
    n, hp, wp, c = x.shape
    ho = (hp - kh) // stride + 1
    wo = (wp - kw) // stride + 1
    views = [
        lax.slice(
            x,
            (0, a, b, 0),
            (n, a + stride * (ho - 1) + 1, b + stride * (wo - 1) + 1, c),
            (1, stride, stride, 1),
        )
        for a in range(kh)
        for b in range(kw)
    ]
    return views, ho, wo


def im2col(x: jax.Array, kh: int, kw: int, stride: int) -> jax.Array:
    """Patches of an already padded NHWC array: ``(N, Ho, Wo, kh*kw*C)``.

    The last axis is ordered ``(a, b, c)``, matching ``kernel.reshape(kh*kw*Cin, Cout)``
    for an HWIO kernel, so ``im2col(x) @ kernel.reshape(-1, Cout)`` is a valid conv.
    """
    views, _, _ = _window_slices(x, kh, kw, stride)
    return views[0] if len(views) == 1 else jnp.concatenate(views, axis=-1)


def _out_size(size: int, k: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - k) // stride + 1


# ----------------------------------------------------------------------------------------------------------------------
# conv2d.
# ----------------------------------------------------------------------------------------------------------------------


def conv2d(
    x: jax.Array,
    kernel: jax.Array,
    bias: jax.Array | None = None,
    *,
    stride: int = 1,
    padding: int = 0,
    impl: str | None = None,
) -> jax.Array:
    """2-D cross-correlation with zero padding, torch ``F.conv2d`` semantics in NHWC/HWIO.

    Args:
      x: ``(N, H, W, Cin)``.
      kernel: HWIO ``(kh, kw, Cin, Cout)`` (torch weight ``.transpose(2, 3, 1, 0)``).
      bias: ``(Cout,)`` or None.
      stride: same stride along H and W.
      padding: symmetric zero padding on every spatial side.
      impl: 'fast' (im2col + one dot), 'xla' (``lax.conv_general_dilated``), or None for
        :func:`default_impl`.

    Returns:
      ``(N, Ho, Wo, Cout)`` with ``Ho = (H + 2*padding - kh) // stride + 1``.
    """
    impl = _resolve_impl(impl)
    stride = _check_int("stride", stride, 1)
    padding = _check_int("padding", padding, 0)
    if x.ndim != 4 or kernel.ndim != 4:
        raise ValueError(f"conv2d expects x (N,H,W,C) and kernel (kh,kw,Cin,Cout); got {x.shape} and {kernel.shape}")
    kh, kw, cin, cout = kernel.shape
    if x.shape[-1] != cin:
        raise ValueError(f"conv2d: input has {x.shape[-1]} channels but kernel {kernel.shape} expects Cin={cin}")
    if _out_size(x.shape[1], kh, stride, padding) < 1 or _out_size(x.shape[2], kw, stride, padding) < 1:
        raise ValueError(f"conv2d: kernel {kh}x{kw} with padding {padding} does not fit input {x.shape[1:3]}")
    if impl == "xla":
        y = lax.conv_general_dilated(
            x, kernel, (stride, stride), ((padding, padding), (padding, padding)), dimension_numbers=_NHWC
        )
    else:
        xp = _pad_hw(x, (padding, padding), (padding, padding))
        y = jnp.dot(im2col(xp, kh, kw, stride), kernel.reshape(kh * kw * cin, cout))
    return y if bias is None else y + bias


# ----------------------------------------------------------------------------------------------------------------------
# conv_transpose2d.
# ----------------------------------------------------------------------------------------------------------------------


def conv_transpose_out_size(size: int, k: int, stride: int, padding: int) -> int:
    """torch ``ConvTranspose2d`` output size (output_padding=0, dilation=1): ``(size-1)*s - 2p + k``."""
    return (size - 1) * stride - 2 * padding + k


def _check_conv_transpose(x_shape: Sequence[int], kernel_shape: Sequence[int], stride: int, padding: int) -> None:
    *_, h, w, c = x_shape
    kh, kw, cin, _ = kernel_shape[-4:]
    if c != cin:
        raise ValueError(f"conv_transpose2d: input has {c} channels but kernel {tuple(kernel_shape)} expects Cin={cin}")
    if conv_transpose_out_size(h, kh, stride, padding) < 1 or conv_transpose_out_size(w, kw, stride, padding) < 1:
        raise ValueError(
            f"conv_transpose2d: kernel {kh}x{kw}, stride {stride}, padding {padding} give an empty output "
            f"for input {h}x{w}"
        )


def _conv_transpose_xla(x: jax.Array, kernel: jax.Array, stride: int, padding: int) -> jax.Array:
    """Reference: stride-1 conv of the s-dilated input with the spatially flipped kernel (= ``lax.conv_transpose``)."""
    kh, kw = kernel.shape[:2]
    ph, pw = kh - 1 - padding, kw - 1 - padding
    y = lax.conv_general_dilated(
        x,
        jnp.flip(kernel, (0, 1)),
        (1, 1),
        ((max(ph, 0), max(ph, 0)), (max(pw, 0), max(pw, 0))),
        lhs_dilation=(stride, stride),
        dimension_numbers=_NHWC,
    )
    if ph < 0 or pw < 0:  # padding > k-1: crop instead of negative padding.
        ch, cw = max(-ph, 0), max(-pw, 0)
        y = y[:, ch : y.shape[1] - ch, cw : y.shape[2] - cw]
    return y


# Choice between the two 'fast' formulations (see _conv_transpose_formulation).
SCATTER_RATIO_THRESHOLD = 1.5


def _taps_per_phase(k: int, stride: int) -> int:
    """J = ceil(k/s): how many kernel taps feed each output phase along one axis."""
    return -(-k // stride)


def _pad_kernel_to_stride(kernel: jax.Array, stride: int) -> jax.Array:
    """Zero-pad the spatial axes of ``(..., kh, kw, Cin, Cout)`` up to multiples of the stride (J*s)."""
    *lead, kh, kw, _, _ = kernel.shape
    jh, jw = _taps_per_phase(kh, stride), _taps_per_phase(kw, stride)
    if jh * stride == kh and jw * stride == kw:
        return kernel
    return jnp.pad(kernel, [(0, 0)] * len(lead) + [(0, jh * stride - kh), (0, jw * stride - kw), (0, 0), (0, 0)])


def _polyphase_kernel(kernel: jax.Array, stride: int) -> jax.Array:
    """``(..., kh, kw, Cin, Cout)`` -> ``(..., J_h*J_w*Cin, s*s*Cout)`` with ``J = ceil(k/s)``.

    Entry ``[(t_y, t_x, c), (r_y, r_x, o)] = w[r_y + s*(J_h-1-t_y), r_x + s*(J_w-1-t_x), c, o]``
    (zero where the tap index exceeds k-1): window tap t of the polyphase im2col
    feeds output phase r through kernel tap ``r + s*(J-1-t)``.
    """
    *lead, kh, kw, cin, cout = kernel.shape
    s, nl = stride, len(lead)
    jh, jw = _taps_per_phase(kh, s), _taps_per_phase(kw, s)
    k = _pad_kernel_to_stride(kernel, s).reshape(*lead, jh, s, jw, s, cin, cout)
    k = jnp.flip(k, (nl, nl + 2))  # tap index j -> window index t = J-1-j
    k = k.transpose(*range(nl), nl, nl + 2, nl + 4, nl + 1, nl + 3, nl + 5)  # (..., t_y, t_x, c, r_y, r_x, o)
    return k.reshape(*lead, jh * jw * cin, s * s * cout)


def _scatter_kernel(kernel: jax.Array, stride: int) -> jax.Array:
    """``(..., kh, kw, Cin, Cout)`` -> ``(..., Cin, J_h*J_w*s*s*Cout)``, columns ordered ``(j_y, j_x, r_y, r_x, o)``.

    Column ``(j, r)`` holds kernel tap ``a = j*s + r`` (zero beyond k-1).
    """
    *lead, kh, kw, cin, cout = kernel.shape
    s, nl = stride, len(lead)
    jh, jw = _taps_per_phase(kh, s), _taps_per_phase(kw, s)
    k = _pad_kernel_to_stride(kernel, s).reshape(*lead, jh, s, jw, s, cin, cout)
    k = k.transpose(*range(nl), nl + 4, nl, nl + 2, nl + 1, nl + 3, nl + 5)  # (..., c, j_y, j_x, r_y, r_x, o)
    return k.reshape(*lead, cin, jh * jw * s * s * cout)


def _dot_kernel(kernel: jax.Array) -> jax.Array:
    """``(..., kh, kw, Cin, Cout)`` -> ``(..., Cin, kh*kw*Cout)`` for a single-pixel input."""
    *lead, kh, kw, cin, cout = kernel.shape
    nl = len(lead)
    return kernel.transpose(*range(nl), nl + 2, nl, nl + 1, nl + 3).reshape(*lead, cin, kh * kw * cout)


def _matmul(lhs: jax.Array, kmat: jax.Array) -> jax.Array:
    """``(M, h, w, K) @ (K, O)`` (shared kernel) or, with ``kmat`` ``(B, K, O)`` and ``M = B*frames``,
    one batched matmul ``einsum('bpk,bko->bpo')`` where example b's frames use ``kmat[b]``."""
    if kmat.ndim == 2:
        return jnp.dot(lhs, kmat)
    m, h, w, k = lhs.shape
    b = kmat.shape[0]
    y = jnp.einsum("bpk,bko->bpo", lhs.reshape(b, (m // b) * h * w, k), kmat)
    return y.reshape(m, h, w, kmat.shape[-1])


def _phases_to_space(y: jax.Array, stride: int, padding: int, out_h: int, out_w: int) -> jax.Array:
    """Depth-to-space of ``(M, Qh, Qw, s*s*Cout)`` phase outputs (``z = q*s + r``), then crop ``[p, p+out)``."""
    m, qh, qw, sc = y.shape
    s = stride
    cout = sc // (s * s)
    y = y.reshape(m, qh, qw, s, s, cout).transpose(0, 1, 3, 2, 4, 5).reshape(m, qh * s, qw * s, cout)
    return y[:, padding : padding + out_h, padding : padding + out_w]


def _conv_transpose_formulation(h: int, w: int, cin: int, cout: int, kh: int, kw: int, stride: int) -> str:
    """Which 'fast' formulation to use: 'dot' (1x1 input), 'scatter' or 'polyphase'.

    Both of the latter do the same useful multiply-adds, but materialise different intermediates:
    polyphase the im2col patches, ``(H+J-1)(W+J-1) * J*J*Cin`` per image (and it multiplies over
    the (H+J-1)^2 window grid, wasteful on tiny maps); scatter the per-pixel contributions,
    ``H*W * J*J*s*s*Cout``. Measured here (XLA:CPU, k4 s2 p1, fwd+bwd, decoder shapes 4..32 px,
    Cout = 3..256, shared and per-example kernels) the scatter form wins when
    ``R = s*s*Cout*H*W / (Cin*(H+J-1)*(W+J-1))`` is below ~1.5 (e.g. 5-7x faster for Cout=3,
    ~25% on 4x4 maps) and polyphase wins above it (1.3-1.5x at 16x16, 128->64).
    """
    if h == 1 and w == 1:
        return "dot"
    qh, qw = h + _taps_per_phase(kh, stride) - 1, w + _taps_per_phase(kw, stride) - 1
    ratio = stride * stride * cout * h * w / (cin * qh * qw)
    return "scatter" if ratio < SCATTER_RATIO_THRESHOLD else "polyphase"


def _kernel_matrix(kernel: jax.Array, formulation: str, stride: int) -> jax.Array:
    """``(..., kh, kw, Cin, Cout)`` -> the ``(..., K, O)`` matrix the 'fast' ``formulation`` multiplies by."""
    if formulation == "dot":
        return _dot_kernel(kernel)
    if formulation == "polyphase":
        return _polyphase_kernel(kernel, stride)
    if formulation == "scatter":
        return _scatter_kernel(kernel, stride)
    raise ValueError(f"unknown conv_transpose formulation {formulation!r}; expected 'dot', 'polyphase' or 'scatter'")


def _conv_transpose_fast(
    x: jax.Array, kernel: jax.Array, stride: int, padding: int, formulation: str | None = None
) -> jax.Array:
    """The 'fast' transposed conv. ``x`` ``(M, H, W, Cin)``; ``kernel`` ``(kh, kw, Cin, Cout)`` shared by all M
    images, or ``(B, kh, kw, Cin, Cout)`` with ``M = B*frames`` (consecutive frames share a kernel).

    ``formulation`` None picks by :func:`_conv_transpose_formulation`; tests force each one.

    * 'dot' (H = W = 1): ``out[a-p, b-p, o] = sum_c x[c] w[a, b, c, o]``: one matmul and a crop.
    * 'polyphase': im2col of J x J windows (J = ceil(k/s)) over x padded by J-1, one matmul with
      :func:`_polyphase_kernel` giving all s*s output phases on the (H+J-1, W+J-1) grid, depth-to-space, crop.
    * 'scatter': one matmul of x itself with :func:`_scatter_kernel` gives every pixel's k x k x Cout
      contribution; phase r of tap ``a = j*s + r`` lands on grid cell ``i + j``, so the overlap-add is
      J*J shifted adds on the phase grid (``jnp.split`` so that its adjoint is one concatenate),
      then depth-to-space and crop.
    """
    _, h, w, cin = x.shape
    kh, kw, _, cout = kernel.shape[-4:]
    if formulation is None:
        formulation = _conv_transpose_formulation(h, w, cin, cout, kh, kw, stride)
    if formulation == "dot" and (h, w) != (1, 1):
        raise ValueError(f"the 'dot' formulation needs a 1x1 input, got {h}x{w}")
    kmat = _kernel_matrix(kernel, formulation, stride)
    return _conv_transpose_with_matrix(x, kmat, (kh, kw, cout), stride, padding, formulation)


def _conv_transpose_with_matrix(
    x: jax.Array, kmat: jax.Array, kernel_hwo: tuple[int, int, int], stride: int, padding: int, formulation: str
) -> jax.Array:
    """:func:`_conv_transpose_fast` given the formulation's kernel matrix ``kmat`` (``(K, O)`` or ``(B, K, O)``)."""
    m, h, w, _ = x.shape
    kh, kw, cout = kernel_hwo
    out_h = conv_transpose_out_size(h, kh, stride, padding)
    out_w = conv_transpose_out_size(w, kw, stride, padding)
    if formulation == "dot":
        y = _matmul(x, kmat).reshape(m, kh, kw, cout)
        return y[:, padding : padding + out_h, padding : padding + out_w]
    jh, jw = _taps_per_phase(kh, stride), _taps_per_phase(kw, stride)
    if formulation == "polyphase":
        patches = im2col(_pad_hw(x, (jh - 1, jh - 1), (jw - 1, jw - 1)), jh, jw, 1)
        return _phases_to_space(_matmul(patches, kmat), stride, padding, out_h, out_w)
    contrib = _matmul(x, kmat)  # 'scatter': (M, H, W, Jh*Jw*s*s*Cout)
    acc = None
    for idx, term in enumerate(jnp.split(contrib, jh * jw, axis=-1)):
        jy, jx = divmod(idx, jw)
        term = _pad_hw(term, (jy, jh - 1 - jy), (jx, jw - 1 - jx))
        acc = term if acc is None else acc + term
    return _phases_to_space(acc, stride, padding, out_h, out_w)


def conv_transpose2d(
    x: jax.Array,
    kernel: jax.Array,
    bias: jax.Array | None = None,
    *,
    stride: int,
    padding: int,
    impl: str | None = None,
) -> jax.Array:
    """Transposed 2-D conv with exactly torch ``F.conv_transpose2d(x, w, stride, padding)`` semantics.

    Args:
      x: ``(N, H, W, Cin)``.
      kernel: ``(kh, kw, Cin, Cout)`` = torch ``ConvTranspose2d.weight.transpose(2, 3, 0, 1)``, NOT flipped.
      bias: ``(Cout,)`` or None.
      stride, padding: as in torch (output_padding 0, dilation 1).
      impl: 'fast' (one matmul for a 1x1 input, else the polyphase or scatter formulation of
        :func:`_conv_transpose_fast`, each a single matmul plus data movement), 'xla' (lhs-dilated
        ``lax.conv_general_dilated``, i.e. ``lax.conv_transpose``), or None for :func:`default_impl`.

    Returns:
      ``(N, (H-1)*s - 2p + kh, (W-1)*s - 2p + kw, Cout)``.
    """
    impl = _resolve_impl(impl)
    stride = _check_int("stride", stride, 1)
    padding = _check_int("padding", padding, 0)
    if x.ndim != 4 or kernel.ndim != 4:
        raise ValueError(
            f"conv_transpose2d expects x (N,H,W,C) and kernel (kh,kw,Cin,Cout); got {x.shape} and {kernel.shape}"
        )
    _check_conv_transpose(x.shape, kernel.shape, stride, padding)
    fn = _conv_transpose_xla if impl == "xla" else _conv_transpose_fast
    y = fn(x, kernel, stride, padding)
    return y if bias is None else y + bias


def conv_transpose2d_per_example(
    x: jax.Array,
    kernels: jax.Array,
    biases: jax.Array | None = None,
    *,
    stride: int,
    padding: int,
    impl: str | None = None,
) -> jax.Array:
    """Transposed conv where every sequence ``b`` has its own kernel (VDSM's blended MoE decoder).

    Args:
      x: ``(B, N, H, W, Cin)``; all N frames of sequence b use ``kernels[b]``.
      kernels: ``(B, kh, kw, Cin, Cout)``, each in the :func:`conv_transpose2d` layout.
      biases: ``(B, Cout)`` or None.
      stride, padding: as in :func:`conv_transpose2d`.
      impl: 'fast' = the formulations of :func:`conv_transpose2d` with the matmul replaced by ONE
        batched matmul ``einsum('bpk,bko->bpo')`` over sequences, p running over all frames'
        patches (polyphase) or pixels (scatter); no Python loop. 'xla' = ``vmap`` over B of the
        XLA transposed conv (a reference; very slow on CPU). None = :func:`default_impl`.

    Returns:
      ``(B, N, Ho, Wo, Cout)`` with the sizes of :func:`conv_transpose2d`.
    """
    impl = _resolve_impl(impl)
    stride = _check_int("stride", stride, 1)
    padding = _check_int("padding", padding, 0)
    if x.ndim != 5 or kernels.ndim != 5 or x.shape[0] != kernels.shape[0]:
        raise ValueError(
            "conv_transpose2d_per_example expects x (B,N,H,W,Cin) and kernels (B,kh,kw,Cin,Cout) with the same B; "
            f"got {x.shape} and {kernels.shape}"
        )
    _check_conv_transpose(x.shape, kernels.shape, stride, padding)
    b, nf, h, w, cin = x.shape
    cout = kernels.shape[-1]
    if biases is not None and biases.shape != (b, cout):
        raise ValueError(f"conv_transpose2d_per_example: biases must have shape {(b, cout)}, got {biases.shape}")
    if impl == "xla":
        y = jax.vmap(lambda xb, kb: _conv_transpose_xla(xb, kb, stride, padding))(x, kernels)
    else:
        y = _conv_transpose_fast(x.reshape(b * nf, h, w, cin), kernels, stride, padding)
        y = y.reshape(b, nf, *y.shape[1:])
    return y if biases is None else y + biases[:, None, None, None, :]


def conv_transpose2d_mixture(
    x: jax.Array,
    weights: jax.Array,
    expert_kernels: jax.Array,
    expert_biases: jax.Array | None = None,
    *,
    stride: int,
    padding: int,
    impl: str | None = None,
) -> jax.Array:
    """Transposed conv whose kernel for sequence ``b`` is the ``weights[b]``-blend of E experts' kernels.

    Exactly :func:`conv_transpose2d_per_example` with ``kernels[b] = sum_e weights[b, e] * expert_kernels[e]``
    and ``biases[b] = sum_e weights[b, e] * expert_biases[e]`` (VDSM's mixture-of-experts decoder layer).

    Args:
      x: ``(B, N, H, W, Cin)``; all N frames of sequence b use blend b.
      weights: ``(B, E)`` blend weights.
      expert_kernels: ``(E, kh, kw, Cin, Cout)``, each in the :func:`conv_transpose2d` layout.
      expert_biases: ``(E, Cout)`` or None.
      stride, padding: as in :func:`conv_transpose2d`.
      impl: 'fast' rearranges the E expert kernels into the chosen formulation's ``(K, O)`` matrix layout
        first and blends there with ONE 2-D matmul ``weights @ experts.reshape(E, K*O)``, so the B blended
        kernels are produced directly in the layout the batched matmul reads (no copy of the B kernels),
        and the backward pass's expert gradient ``weights.T @ dkernels`` comes out in the experts' own
        row-major layout. 'xla' blends with an einsum and runs the per-example XLA transposed conv (the
        reference). None = :func:`default_impl`.

    Returns:
      ``(B, N, Ho, Wo, Cout)`` with the sizes of :func:`conv_transpose2d`.
    """
    impl = _resolve_impl(impl)
    stride = _check_int("stride", stride, 1)
    padding = _check_int("padding", padding, 0)
    if x.ndim != 5 or weights.ndim != 2 or expert_kernels.ndim != 5:
        raise ValueError(
            "conv_transpose2d_mixture expects x (B,N,H,W,Cin), weights (B,E) and expert_kernels (E,kh,kw,Cin,Cout); "
            f"got {x.shape}, {weights.shape} and {expert_kernels.shape}"
        )
    b, nf, h, w, cin = x.shape
    n_experts, kh, kw, _, cout = expert_kernels.shape
    if weights.shape != (b, n_experts):
        raise ValueError(
            f"conv_transpose2d_mixture: weights must have shape {(b, n_experts)} (B, E), got {weights.shape}"
        )
    if expert_biases is not None and expert_biases.shape != (n_experts, cout):
        raise ValueError(
            f"conv_transpose2d_mixture: expert_biases must have shape {(n_experts, cout)}, got {expert_biases.shape}"
        )
    _check_conv_transpose(x.shape, expert_kernels.shape, stride, padding)
    biases = None if expert_biases is None else jnp.dot(weights, expert_biases)
    if impl == "xla":
        kernels = jnp.einsum("be,ehwio->bhwio", weights, expert_kernels)
        return conv_transpose2d_per_example(x, kernels, biases, stride=stride, padding=padding, impl="xla")
    formulation = _conv_transpose_formulation(h, w, cin, cout, kh, kw, stride)
    experts = _kernel_matrix(expert_kernels, formulation, stride)  # (E, K, O)
    kmat = jnp.dot(weights, experts.reshape(n_experts, -1)).reshape(b, *experts.shape[1:])
    y = _conv_transpose_with_matrix(x.reshape(b * nf, h, w, cin), kmat, (kh, kw, cout), stride, padding, formulation)
    y = y.reshape(b, nf, *y.shape[1:])
    return y if biases is None else y + biases[:, None, None, None, :]


# ----------------------------------------------------------------------------------------------------------------------
# Pooling and resampling.
# ----------------------------------------------------------------------------------------------------------------------


def blur_pool(x: jax.Array, *, stride: int = 2, impl: str | None = None) -> jax.Array:
    """antialiased_cnns ``BlurPool(C, filt_size=4, stride)`` (VDSM encoder), NHWC.

    Reflect padding (top/left 1, bottom/right 2; torch ``ReflectionPad2d``, no edge repeat), then the
    fixed depthwise filter ``outer([1,3,3,1], [1,3,3,1]) / 64`` at the given stride. Not trainable.
    Output size ``(H + 3 - 4) // stride + 1`` (``ceil(H/2)`` for stride 2: 63->32, 7->4).

    'fast' applies the separable filter as two 1-D polyphase passes (contiguous slices, see
    :func:`_blur_axis`) with an explicit adjoint for the backward pass (:func:`_blur_axis_adjoint`):
    autodiff of the strided-slice form materialises one zero-padded full-size array per tap, which made
    the backward 3-20x slower than the forward. 'xla' is a grouped (depthwise) ``lax.conv_general_dilated``.
    """
    impl = _resolve_impl(impl)
    stride = _check_int("stride", stride, 1)
    if x.ndim != 4:
        raise ValueError(f"blur_pool expects x (N,H,W,C), got shape {x.shape}")
    if min(x.shape[1], x.shape[2]) <= max(BLUR_PAD):
        raise ValueError(f"blur_pool: reflect padding by {max(BLUR_PAD)} needs H, W >= 3, got {x.shape[1:3]}")
    if impl == "fast":
        return _blur_pool_fast(x, stride, x.shape[1], x.shape[2])
    xp = jnp.pad(x, ((0, 0), BLUR_PAD, BLUR_PAD, (0, 0)), mode="reflect")
    k = len(BLUR_TAPS_1D)
    taps = np.asarray(BLUR_TAPS_1D, np.float64)
    filt = jnp.asarray(np.outer(taps, taps)[:, :, None, None], x.dtype)
    filt = jnp.broadcast_to(filt, (k, k, 1, x.shape[-1]))
    return lax.conv_general_dilated(
        xp, filt, (stride, stride), "VALID", dimension_numbers=_NHWC, feature_group_count=x.shape[-1]
    )


def _pad_axis(x: jax.Array, axis: int, low: int, high: int) -> jax.Array:
    """Zero padding (``low``, ``high``) of one axis."""
    config = [(0, 0, 0)] * x.ndim
    config[axis] = (low, high, 0)
    return lax.pad(x, jnp.zeros((), x.dtype), config)


def _blur_axis(x: jax.Array, axis: int, stride: int) -> jax.Array:
    """1-D BlurPool along ``axis``: reflect pad (BLUR_PAD), taps BLUR_TAPS_1D, ``stride``.

    Polyphase form: the padded length-L signal ``xp`` (built by concatenating single rows of x, so no
    reversal op) is zero-extended to ``Q*s`` and viewed as ``(Q, s)``; tap u reads phase ``u % s`` at
    offset ``u // s``, a contiguous slice: ``out[j] = sum_u f_u * xp[s*j + u]``.
    """
    n = x.shape[axis]
    lo, hi = BLUR_PAD
    k = len(BLUR_TAPS_1D)
    row = lambda i: lax.slice_in_dim(x, i, i + 1, axis=axis)
    xp = jnp.concatenate([row(i) for i in range(lo, 0, -1)] + [x] + [row(n - 2 - i) for i in range(hi)], axis=axis)
    length = n + lo + hi
    out_len = (length - k) // stride + 1
    q = -(-length // stride)
    xp = _pad_axis(xp, axis, 0, q * stride - length)
    phases = xp.reshape(xp.shape[:axis] + (q, stride) + xp.shape[axis + 1 :])
    out = None
    for u, tap in enumerate(BLUR_TAPS_1D):
        offset, phase = divmod(u, stride)
        term = lax.slice_in_dim(phases, offset, offset + out_len, axis=axis)
        term = tap * lax.index_in_dim(term, phase, axis=axis + 1, keepdims=False)
        out = term if out is None else out + term
    return out


def _blur_axis_adjoint(dy: jax.Array, axis: int, stride: int, n: int) -> jax.Array:
    """Adjoint of :func:`_blur_axis` for an input of length ``n``: ``dxp[m] = sum_{s*j+u=m} f_u dy[j]``, folded.

    Phase r of the padded-signal gradient (``m = s*q + r``) is ``sum_a f_{r+s*a} dy[q-a]``: shifted
    contiguous slices of dy zero-padded by ``A = ceil(k/s)-1`` in front; the phases are interleaved by a
    stack + reshape, and the reflect padding's rows are added back onto the rows they copied.
    """
    lo, hi = BLUR_PAD
    k = len(BLUR_TAPS_1D)
    length = n + lo + hi
    out_len = dy.shape[axis]
    a_max = -(-k // stride) - 1
    q = -(-length // stride)
    dyz = _pad_axis(dy, axis, a_max, q - out_len)
    phases = []
    for r in range(stride):
        acc = None
        for a in range(a_max + 1):
            if r + stride * a < k:
                term = BLUR_TAPS_1D[r + stride * a] * lax.slice_in_dim(dyz, a_max - a, a_max - a + q, axis=axis)
                acc = term if acc is None else acc + term
        phases.append(jnp.zeros_like(lax.slice_in_dim(dyz, 0, q, axis=axis)) if acc is None else acc)
    dxp = jnp.stack(phases, axis=axis + 1)
    dxp = dxp.reshape(dxp.shape[:axis] + (q * stride,) + dxp.shape[axis + 2 :])
    dx = lax.slice_in_dim(dxp, lo, lo + n, axis=axis)
    # Padded row m < lo copied row lo - m; padded row lo + n + j copied row n - 2 - j.
    folds = [(m, lo - m) for m in range(lo)] + [(lo + n + j, n - 2 - j) for j in range(hi)]
    for m, i in folds:
        dx = dx + _pad_axis(lax.slice_in_dim(dxp, m, m + 1, axis=axis), axis, i, n - 1 - i)
    return dx


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _blur_pool_fast(x: jax.Array, stride: int, h: int, w: int) -> jax.Array:
    """'fast' blur_pool of an ``(N, h, w, C)`` input; h, w are static so the adjoint knows the input size."""
    return _blur_axis(_blur_axis(x, 1, stride), 2, stride)


def _blur_pool_fast_fwd(x: jax.Array, stride: int, h: int, w: int) -> tuple[jax.Array, None]:
    return _blur_pool_fast(x, stride, h, w), None


def _blur_pool_fast_bwd(stride: int, h: int, w: int, _: None, dy: jax.Array) -> tuple[jax.Array]:
    return (_blur_axis_adjoint(_blur_axis_adjoint(dy, 2, stride, w), 1, stride, h),)


_blur_pool_fast.defvjp(_blur_pool_fast_fwd, _blur_pool_fast_bwd)


def max_pool2d(
    x: jax.Array, *, window: int, stride: int | None = None, padding: int = 0, impl: str | None = None
) -> jax.Array:
    """torch ``MaxPool2d(window, stride, padding)`` (floor mode) in NHWC; padding counts as -inf.

    ResNet-18's stem uses ``window=3, stride=2, padding=1``; the VGG encoder ``window=2``.
    'fast' takes the elementwise max of window*window strided slices; 'xla' uses ``lax.reduce_window``.
    Gradients differ only on exact ties inside a window ('fast' splits the gradient between tied
    maxima, 'xla' and torch send it to one of them).
    """
    impl = _resolve_impl(impl)
    window = _check_int("window", window, 1)
    stride = window if stride is None else _check_int("stride", stride, 1)
    padding = _check_int("padding", padding, 0)
    if x.ndim != 4:
        raise ValueError(f"max_pool2d expects x (N,H,W,C), got shape {x.shape}")
    if padding > window // 2:
        raise ValueError(f"max_pool2d: padding {padding} must be at most window//2 = {window // 2} (as in torch)")
    if _out_size(x.shape[1], window, stride, padding) < 1 or _out_size(x.shape[2], window, stride, padding) < 1:
        raise ValueError(f"max_pool2d: window {window} with padding {padding} does not fit input {x.shape[1:3]}")
    if impl == "xla":
        pads = ((0, 0), (padding, padding), (padding, padding), (0, 0))
        return lax.reduce_window(x, -jnp.inf, lax.max, (1, window, window, 1), (1, stride, stride, 1), pads)
    xp = _pad_hw(x, (padding, padding), (padding, padding), -jnp.inf)
    views, _, _ = _window_slices(xp, window, window, stride)
    out = views[0]
    for v in views[1:]:
        out = jnp.maximum(out, v)
    return out


def max_pool2x2(x: jax.Array, *, impl: str | None = None) -> jax.Array:
    """torch ``MaxPool2d(2)``: 2x2 windows, stride 2, odd sizes floored. NHWC."""
    return max_pool2d(x, window=2, stride=2, padding=0, impl=impl)


def upsample_nearest(x: jax.Array, factor: int = 2) -> jax.Array:
    """torch ``UpsamplingNearest2d(scale_factor=factor)`` in NHWC: every pixel repeated factor x factor."""
    factor = _check_int("factor", factor, 1)
    if x.ndim != 4:
        raise ValueError(f"upsample_nearest expects x (N,H,W,C), got shape {x.shape}")
    n, h, w, c = x.shape
    y = jnp.broadcast_to(x[:, :, None, :, None, :], (n, h, factor, w, factor, c))
    return y.reshape(n, h * factor, w * factor, c)
