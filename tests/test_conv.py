"""Tests for vdcore.conv and vdcore.layers: every (k, s, p) the VDSM and DRNet networks use.

NumPy references are written from the definitions, in torch's weight layouts, so they also pin
down the documented torch -> JAX kernel conversions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdcore import conv as C
from vdcore.layers import Conv2D, ConvTranspose2D

ATOL = 1e-5
RTOL = 1e-5

# (kh, kw, stride, padding, H, W): the models' convs (VDSM encoder, DRNet dcgan/vgg, ResNet-18) + a rectangular kernel.
CONV_CASES = [
    (4, 4, 1, 1, 7, 6),  # VDSM encoder
    (4, 4, 1, 0, 4, 5),  # VDSM encoder, last layer
    (4, 4, 2, 1, 8, 7),  # DRNet dcgan_conv
    (3, 3, 1, 1, 5, 6),  # VGG, ResNet blocks
    (7, 7, 2, 3, 9, 8),  # ResNet stem
    (3, 3, 2, 1, 7, 8),  # ResNet downsampling block
    (1, 1, 2, 0, 7, 6),  # ResNet shortcut
    (3, 2, 1, 1, 5, 4),  # rectangular kernel
]
# (k, stride, padding, H, W) for transposed convs.
CONV_T_CASES = [
    (4, 1, 0, 1, 1),  # VDSM / DRNet decoder first layer from a 1x1 code
    (4, 2, 1, 4, 3),  # upconv
    (4, 2, 1, 1, 1),  # upconv on a 1x1 input (single-dot path with crop)
    (3, 2, 1, 3, 4),  # odd general case
    (4, 1, 1, 3, 3),  # stride 1 on a spatial input
    (5, 3, 2, 3, 2),  # k not divisible by s
    (2, 2, 0, 3, 3),  # pure depth-to-space
    (3, 1, 3, 6, 5),  # padding > k-1
]


def _rand(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def np_conv2d_torch(x: np.ndarray, w_torch: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """Direct sum: out[n,i,j,o] = sum_{a,b,c} xpad[n, i*s+a, j*s+b, c] * w_torch[o,c,a,b]."""
    x = x.astype(np.float64)
    cout, _, kh, kw = w_torch.shape
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    ho = (xp.shape[1] - kh) // stride + 1
    wo = (xp.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], ho, wo, cout))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, i * stride : i * stride + kh, j * stride : j * stride + kw, :]  # (N, kh, kw, C)
            out[:, i, j, :] = np.einsum("nabc,ocab->no", patch, w_torch)
    return out


def np_conv_transpose2d_torch(x: np.ndarray, w_torch: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """Scatter-add: out[i*s - p + a, j*s - p + b, o] += x[i, j, c] * w_torch[c, o, a, b]."""
    x = x.astype(np.float64)
    n, h, w, _ = x.shape
    _, cout, kh, kw = w_torch.shape
    full = np.zeros((n, (h - 1) * stride + kh, (w - 1) * stride + kw, cout))
    for i in range(h):
        for j in range(w):
            for a in range(kh):
                for b in range(kw):
                    full[:, i * stride + a, j * stride + b, :] += x[:, i, j, :] @ w_torch[:, :, a, b]
    out_h = (h - 1) * stride - 2 * padding + kh
    out_w = (w - 1) * stride - 2 * padding + kw
    return full[:, padding : padding + out_h, padding : padding + out_w, :]


def np_blur_pool(x: np.ndarray, stride: int = 2) -> np.ndarray:
    """antialiased_cnns BlurPool(filt_size=4): reflect pad (1, 2), depthwise outer([1,3,3,1])/64, stride."""
    a = np.array([1.0, 3.0, 3.0, 1.0])
    filt = np.outer(a, a) / np.sum(np.outer(a, a))
    xp = np.pad(x.astype(np.float64), ((0, 0), (1, 2), (1, 2), (0, 0)), mode="reflect")
    ho = (xp.shape[1] - 4) // stride + 1
    wo = (xp.shape[2] - 4) // stride + 1
    out = np.zeros((x.shape[0], ho, wo, x.shape[3]))
    for i in range(ho):
        for j in range(wo):
            win = xp[:, i * stride : i * stride + 4, j * stride : j * stride + 4, :]
            out[:, i, j, :] = np.einsum("nabc,ab->nc", win, filt)
    return out


def _fwd_and_grads(fn, ct, *args):
    """``fn(*args)`` and the gradients of ``<fn(*args), ct>`` w.r.t. every arg, in one compiled call.

    Jitting the whole forward+backward compiles one small program instead of dispatching
    dozens of eagerly compiled primitives, which keeps this file fast.
    """

    def run(ct_, *args_):
        out, vjp = jax.vjp(fn, *args_)
        return out, vjp(ct_)

    return jax.jit(run)(ct, *args)


def _assert_close(a, b, what: str) -> None:
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL, atol=ATOL, err_msg=what)


# ----------------------------------------------------------------------------------------------------------------------
# conv2d
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kh", "kw", "s", "p", "h", "w"), CONV_CASES)
def test_conv2d_matches_reference_and_impls_agree(kh, kw, s, p, h, w):
    rng = np.random.default_rng([kh, kw, s, p, h, w])
    x = _rand(rng, 2, h, w, 3)
    w_torch = _rand(rng, 4, 3, kh, kw)  # torch Conv2d weight (Cout, Cin, kh, kw)
    bias = _rand(rng, 4)
    kernel = jnp.asarray(C.kernel_from_torch_conv(w_torch))
    assert kernel.shape == (kh, kw, 3, 4)
    ref = np_conv2d_torch(x, w_torch, s, p) + bias
    ct = _rand(rng, *ref.shape)
    res = {
        impl: _fwd_and_grads(
            lambda x_, k_, b_, impl=impl: C.conv2d(x_, k_, b_, stride=s, padding=p, impl=impl), ct, x, kernel, bias
        )
        for impl in C.IMPLS
    }
    for impl, (out, _) in res.items():
        assert out.shape == (2, (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1, 4) == ref.shape, impl
        assert out.dtype == jnp.float32
        _assert_close(out, ref, f"conv2d {impl} vs NumPy reference")
    for name, g_fast, g_xla in zip(("input", "kernel", "bias"), res["fast"][1], res["xla"][1], strict=True):
        _assert_close(g_fast, g_xla, f"conv2d grad wrt {name}")


def test_conv2d_bad_inputs_raise():
    x = jnp.zeros((1, 5, 5, 3))
    with pytest.raises(ValueError, match="3 channels but kernel"):
        C.conv2d(x, jnp.zeros((3, 3, 2, 4)), impl="fast")
    with pytest.raises(ValueError, match="impl must be one of"):
        C.conv2d(x, jnp.zeros((3, 3, 3, 4)), impl="cudnn")
    with pytest.raises(ValueError, match="does not fit input"):
        C.conv2d(x, jnp.zeros((7, 7, 3, 4)), impl="fast")
    with pytest.raises(ValueError, match="stride must be an int >= 1"):
        C.conv2d(x, jnp.zeros((3, 3, 3, 4)), stride=0)


def test_default_impl_is_fast_on_cpu():
    assert C.default_impl() == ("fast" if jax.default_backend() == "cpu" else "xla")


# ----------------------------------------------------------------------------------------------------------------------
# conv_transpose2d
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "s", "p", "h", "w"), CONV_T_CASES)
def test_conv_transpose2d_matches_scatter_reference_and_impls_agree(k, s, p, h, w):
    rng = np.random.default_rng([k, s, p, h, w, 1])
    x = _rand(rng, 2, h, w, 3)
    w_torch = _rand(rng, 3, 5, k, k)  # torch ConvTranspose2d weight (Cin, Cout, kh, kw)
    bias = _rand(rng, 5)
    kernel = jnp.asarray(C.kernel_from_torch_conv_transpose(w_torch))
    assert kernel.shape == (k, k, 3, 5)
    ref = np_conv_transpose2d_torch(x, w_torch, s, p) + bias
    assert ref.shape[1:3] == (C.conv_transpose_out_size(h, k, s, p), C.conv_transpose_out_size(w, k, s, p))
    ct = _rand(rng, *ref.shape)
    res = {name: _fwd_and_grads(fn, ct, x, kernel, bias) for name, fn in _conv_transpose_variants(s, p, h, w).items()}
    for name, (out, _) in res.items():
        assert out.shape == ref.shape, name
        _assert_close(out, ref, f"conv_transpose2d {name} vs NumPy scatter-add reference")
    for name, (_, grads) in res.items():
        for arg, g, g_xla in zip(("input", "kernel", "bias"), grads, res["xla"][1], strict=True):
            _assert_close(g, g_xla, f"conv_transpose2d {name} grad wrt {arg}")


def _formulations(h: int, w: int) -> list[str]:
    return ["polyphase", "scatter"] + (["dot"] if (h, w) == (1, 1) else [])


def _conv_transpose_variants(s: int, p: int, h: int, w: int) -> dict:
    """Every implementation of conv_transpose2d: both impls, and each 'fast' formulation forced."""
    variants = {
        impl: (lambda x_, k_, b_, impl=impl: C.conv_transpose2d(x_, k_, b_, stride=s, padding=p, impl=impl))
        for impl in C.IMPLS
    }
    for form in _formulations(h, w):
        variants[f"fast/{form}"] = lambda x_, k_, b_, form=form: C._conv_transpose_fast(x_, k_, s, p, form) + b_
    return variants


def test_conv_transpose_formulation_choice():
    """The decoders' shapes get the formulation measured fastest (see _conv_transpose_formulation)."""
    choose = C._conv_transpose_formulation
    assert choose(1, 1, 45, 512, 4, 4, 1) == "dot"  # first decoder layer
    assert choose(32, 32, 64, 3, 4, 4, 2) == "scatter"  # 64 -> 3 output layer
    assert choose(4, 4, 512, 256, 4, 4, 2) == "scatter"  # 4x4 maps
    assert choose(16, 16, 128, 64, 4, 4, 2) == "polyphase"
    with pytest.raises(ValueError, match="unknown conv_transpose formulation 'fft'"):
        C._conv_transpose_fast(jnp.zeros((1, 2, 2, 3)), jnp.zeros((4, 4, 3, 2)), 2, 1, "fft")
    with pytest.raises(ValueError, match="needs a 1x1 input"):
        C._conv_transpose_fast(jnp.zeros((1, 2, 2, 3)), jnp.zeros((4, 4, 3, 2)), 2, 1, "dot")


def test_conv_transpose2d_is_adjoint_of_conv2d():
    """<conv2d(y, w), x> == <y, conv_transpose2d(x, w)> for the same stored kernel (k4 s2 p1)."""
    rng = np.random.default_rng(7)
    y = jnp.asarray(_rand(rng, 2, 8, 8, 3))  # conv input / transposed-conv output
    x = jnp.asarray(_rand(rng, 2, 4, 4, 5))  # conv output / transposed-conv input
    w_conv = jnp.asarray(_rand(rng, 4, 4, 3, 5))  # HWIO of the conv: Cin=3, Cout=5
    # The transposed conv of the adjoint pair has Cin=5, Cout=3: swap the channel axes.
    w_t = w_conv.transpose(0, 1, 3, 2)
    lhs, rhs = jax.jit(
        lambda: (
            jnp.vdot(C.conv2d(y, w_conv, stride=2, padding=1, impl="fast"), x),
            jnp.vdot(y, C.conv_transpose2d(x, w_t, stride=2, padding=1, impl="fast")),
        )
    )()
    np.testing.assert_allclose(float(lhs), float(rhs), rtol=1e-5)


def test_conv_transpose2d_bad_inputs_raise():
    with pytest.raises(ValueError, match="2 channels but kernel"):
        C.conv_transpose2d(jnp.zeros((1, 2, 2, 2)), jnp.zeros((4, 4, 3, 1)), stride=2, padding=1)
    with pytest.raises(ValueError, match="empty output"):
        C.conv_transpose2d(jnp.zeros((1, 1, 1, 3)), jnp.zeros((2, 2, 3, 1)), stride=1, padding=1)
    with pytest.raises(ValueError, match="padding must be an int >= 0"):
        C.conv_transpose2d(jnp.zeros((1, 2, 2, 3)), jnp.zeros((4, 4, 3, 1)), stride=2, padding=-1)


def test_kernel_layout_helpers_keep_leading_axes():
    ew = np.arange(2 * 3 * 5 * 4 * 4).reshape(2, 3, 5, 4, 4)  # VDSM EW: (E, Cin, Cout, kh, kw)
    k = C.kernel_from_torch_conv_transpose(ew)
    assert k.shape == (2, 4, 4, 3, 5)
    assert k[1, 2, 3, 0, 4] == ew[1, 0, 4, 2, 3]  # no spatial flip
    wc = np.arange(5 * 3 * 2 * 4).reshape(5, 3, 2, 4)  # Conv2d: (Cout, Cin, kh, kw)
    kc = C.kernel_from_torch_conv(wc)
    assert kc.shape == (2, 4, 3, 5)
    assert kc[1, 3, 2, 4] == wc[4, 2, 1, 3]
    with pytest.raises(ValueError, match="at least 4 axes"):
        C.kernel_from_torch_conv(np.zeros((3, 3, 3)))


# ----------------------------------------------------------------------------------------------------------------------
# Per-example (MoE) transposed conv
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "s", "p", "h"), [(4, 1, 0, 1), (4, 2, 1, 3), (3, 2, 1, 2)])
def test_conv_transpose2d_per_example_matches_loop(k, s, p, h):
    rng = np.random.default_rng([k, s, p, h, 2])
    b, nf, cin, cout = 3, 2, 4, 3
    x = jnp.asarray(_rand(rng, b, nf, h, h, cin))
    kernels = jnp.asarray(_rand(rng, b, k, k, cin, cout))
    biases = jnp.asarray(_rand(rng, b, cout))
    loop = jax.jit(
        lambda x_, k_, b_: jnp.stack(
            [C.conv_transpose2d(x_[i], k_[i], b_[i], stride=s, padding=p, impl="xla") for i in range(b)]
        )
    )(x, kernels, biases)
    ct = jnp.asarray(_rand(rng, *loop.shape))
    variants = {
        impl: (lambda x_, k_, b_, impl=impl: C.conv_transpose2d_per_example(x_, k_, b_, stride=s, padding=p, impl=impl))
        for impl in C.IMPLS
    }
    for form in _formulations(h, h):
        variants[f"fast/{form}"] = lambda x_, k_, b_, form=form: (
            C._conv_transpose_fast(x_.reshape(b * nf, h, h, cin), k_, s, p, form).reshape(loop.shape)
            + b_[:, None, None, None, :]
        )
    res = {name: _fwd_and_grads(fn, ct, x, kernels, biases) for name, fn in variants.items()}
    for name, (out, _) in res.items():
        assert out.shape == loop.shape, name
        _assert_close(out, loop, f"per-example {name} vs loop over examples")
    for name, (_, grads) in res.items():
        for arg, g, g_xla in zip(("input", "kernels", "biases"), grads, res["xla"][1], strict=True):
            _assert_close(g, g_xla, f"per-example {name} grad wrt {arg}")


def test_conv_transpose2d_per_example_bad_inputs_raise():
    with pytest.raises(ValueError, match="same B"):
        C.conv_transpose2d_per_example(jnp.zeros((2, 1, 1, 1, 3)), jnp.zeros((3, 4, 4, 3, 2)), stride=1, padding=0)
    with pytest.raises(ValueError, match=r"biases must have shape \(2, 2\)"):
        C.conv_transpose2d_per_example(
            jnp.zeros((2, 1, 1, 1, 3)), jnp.zeros((2, 4, 4, 3, 2)), jnp.zeros((2,)), stride=1, padding=0
        )


# ----------------------------------------------------------------------------------------------------------------------
# Pooling
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("h", "w"), [(7, 6), (3, 4), (9, 9)])
def test_blur_pool_matches_definition(h, w):
    rng = np.random.default_rng([h, w, 3])
    x = _rand(rng, 2, h, w, 3)
    ref = np_blur_pool(x)
    assert ref.shape[1:3] == (-(-h // 2), -(-w // 2))
    ct = _rand(rng, *ref.shape)
    res = {impl: _fwd_and_grads(lambda a, impl=impl: C.blur_pool(a, impl=impl), ct, x) for impl in C.IMPLS}
    for impl, (out, _) in res.items():
        assert out.shape == ref.shape, impl
        _assert_close(out, ref, f"blur_pool {impl} vs definition")
    _assert_close(res["fast"][1][0], res["xla"][1][0], "blur_pool grad")


def test_blur_pool_rejects_too_small_input():
    with pytest.raises(ValueError, match="needs H, W >= 3"):
        C.blur_pool(jnp.zeros((1, 2, 5, 1)))


@pytest.mark.parametrize(("window", "stride", "padding", "h", "w"), [(2, 2, 0, 5, 4), (3, 2, 1, 7, 6)])
def test_max_pool_matches_definition(window, stride, padding, h, w):
    rng = np.random.default_rng([window, stride, padding, h, w])
    x = _rand(rng, 2, h, w, 3)
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)), constant_values=-np.inf)
    ho, wo = (h + 2 * padding - window) // stride + 1, (w + 2 * padding - window) // stride + 1
    ref = np.stack(
        [
            np.stack(
                [
                    xp[:, i * stride : i * stride + window, j * stride : j * stride + window].max(axis=(1, 2))
                    for j in range(wo)
                ],
                axis=1,
            )
            for i in range(ho)
        ],
        axis=1,
    )
    ct = _rand(rng, *ref.shape)
    res = {}
    for impl in C.IMPLS:
        if (window, stride, padding) == (2, 2, 0):
            fn = lambda a, impl=impl: C.max_pool2x2(a, impl=impl)
        else:
            fn = lambda a, impl=impl: C.max_pool2d(a, window=window, stride=stride, padding=padding, impl=impl)
        res[impl] = _fwd_and_grads(fn, ct, x)
        assert res[impl][0].shape == ref.shape, impl
        _assert_close(res[impl][0], ref, f"max_pool {impl}")
    _assert_close(res["fast"][1][0], res["xla"][1][0], "max_pool grad")


def test_upsample_nearest():
    x = jnp.arange(2 * 2 * 3 * 1, dtype=jnp.float32).reshape(2, 2, 3, 1)
    y = C.upsample_nearest(x, 2)
    assert y.shape == (2, 4, 6, 1)
    np.testing.assert_array_equal(np.asarray(y), np.repeat(np.repeat(np.asarray(x), 2, axis=1), 2, axis=2))


# ----------------------------------------------------------------------------------------------------------------------
# Model-level shape chains and Flax modules
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", C.IMPLS)
def test_vdsm_encoder_spatial_chain(impl):
    """conv k4 s1 p1 / BlurPool x4, then conv k4 s1 p0: 64->63->32->31->16->15->8->7->4->1."""
    sizes = [64]

    def chain(x):
        for _ in range(4):
            x = C.conv2d(x, jnp.zeros((4, 4, x.shape[-1], 2)), stride=1, padding=1, impl=impl)
            sizes.append(x.shape[1])
            x = C.blur_pool(x, impl=impl)
            sizes.append(x.shape[1])
        x = C.conv2d(x, jnp.zeros((4, 4, 2, 3)), stride=1, padding=0, impl=impl)
        sizes.append(x.shape[1])
        return x

    out = jax.eval_shape(chain, jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))
    assert sizes == [64, 63, 32, 31, 16, 15, 8, 7, 4, 1]
    assert out.shape == (1, 1, 1, 3)


def test_moe_decoder_spatial_chain():
    """VDSM MoE decoder: 1 -> 4 (k4 s1 p0) -> 8 -> 16 -> 32 -> 64 (k4 s2 p1), per-example kernels."""
    sizes = [1]

    def chain(x):
        for i, cout in enumerate((8, 4, 4, 2, 3)):
            s, p = (1, 0) if i == 0 else (2, 1)
            x = C.conv_transpose2d_per_example(
                x, jnp.zeros((x.shape[0], 4, 4, x.shape[-1], cout)), stride=s, padding=p, impl="fast"
            )
            sizes.append(x.shape[2])
        return x

    out = jax.eval_shape(chain, jax.ShapeDtypeStruct((2, 3, 1, 1, 5), jnp.float32))
    assert sizes == [1, 4, 8, 16, 32, 64]
    assert out.shape == (2, 3, 64, 64, 3)


def test_flax_conv_modules_params_and_outputs():
    x = jnp.asarray(_rand(np.random.default_rng(0), 2, 6, 6, 3))
    conv = Conv2D(features=5, kernel_size=4, stride=2, padding=1)
    params = jax.jit(conv.init)(jax.random.key(0), x)["params"]
    assert params["kernel"].shape == (4, 4, 3, 5) and params["bias"].shape == (5,)
    bound = 1 / np.sqrt(4 * 4 * 3)
    assert float(jnp.abs(params["kernel"]).max()) <= bound and float(jnp.abs(params["bias"]).max()) <= bound
    y = jax.jit(conv.apply)({"params": params}, x)
    assert y.shape == (2, 3, 3, 5)
    ref = jax.jit(lambda x_, k_, b_: C.conv2d(x_, k_, b_, stride=2, padding=1, impl="xla"))(
        x, params["kernel"], params["bias"]
    )
    _assert_close(y, ref, "Conv2D")

    convt = ConvTranspose2D(features=7, kernel_size=4, stride=2, padding=1, impl="fast")
    pt = jax.jit(convt.init)(jax.random.key(1), x)["params"]
    assert pt["kernel"].shape == (4, 4, 3, 7) and pt["bias"].shape == (7,)
    assert float(jnp.abs(pt["kernel"]).max()) <= 1 / np.sqrt(4 * 4 * 7)  # torch: fan_in from Cout
    yt = jax.jit(convt.apply)({"params": pt}, x)
    assert yt.shape == (2, 12, 12, 7)
    ref_t = jax.jit(lambda x_, k_, b_: C.conv_transpose2d(x_, k_, b_, stride=2, padding=1, impl="xla"))
    _assert_close(yt, ref_t(x, pt["kernel"], pt["bias"]), "ConvTranspose2D")

    nobias = Conv2D(features=2, kernel_size=(3, 1), use_bias=False, kernel_init=jax.nn.initializers.normal(0.02))
    pn = jax.eval_shape(nobias.init, jax.random.key(2), x)["params"]
    assert set(pn) == {"kernel"} and pn["kernel"].shape == (3, 1, 3, 2)
    with pytest.raises(ValueError, match="kernel_size must be a positive int"):
        jax.eval_shape(Conv2D(features=2, kernel_size=0).init, jax.random.key(0), x)
