"""Forward+backward time of the vdcore.conv kernels, per implementation, at the sizes of performance.md.

    python benchmarks/conv_kernels.py --reps 3 --out runs/conv_kernels.json

Cases (float32, NHWC, jit-compiled, first call = compile + warm-up excluded, median of --reps):
  conv3x3_s1        batch 320, 32x32x64 -> 128, k3 s1 p1            impls: xla, fast
  conv4x4_s2        batch 320, 32x32x64 -> 128, k4 s2 p1            impls: xla, fast
  convT4x4_s2       batch 320, 16x16x128 -> 64, k4 s2 p1            impls: xla, fast (the library's automatic
                    choice, polyphase at this shape), fast/scatter (the library's other formulation, forced), and
                    alternative formulations measured to choose them: subpixel3x3 (3x3-window im2col to 4*Cout +
                    depth-to-space), four2x2 (four 2x2 im2col convs, one per output parity), dilated (zero-dilate +
                    pad + flipped-kernel im2col conv)
  moe_decoder       VDSM MoE decoder at B 20 x T 8: 15 experts blended per sequence, per-example transposed convs
                    (Z+E = 45 -> 512 -> 256 -> 128 -> 64 -> 3, 1 -> 4 -> 8 -> 16 -> 32 -> 64, LeakyReLU(0.01),
                    sigmoid)        impls: fast (automatic choice per layer), fast/polyphase and fast/scatter
                    (one formulation forced for all layers), + xla with --include-slow (~40 s/rep)
  blur_pool         160 frames, 63x63x32 (VDSM encoder's first BlurPool)   impls: xla, fast
fwd+bwd = output plus gradients w.r.t. the input and every parameter (a fixed random cotangent).
Each alternative formulation is first checked against the 'xla' reference on a small input.
Prints a table (seconds, achieved GFLOP/s of the useful multiply-adds) and writes JSON to --out.
Timings on a shared machine are approximate: compare ratios from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from vdcore import conv as C  # noqa: E402

# torch CPU fwd+bwd times of the originals' layers on the project's reference machine (benchmarks/README.md).
TORCH_SECONDS = {"conv3x3_s1": 1.2, "conv4x4_s2": 0.43, "convT4x4_s2": 0.57, "moe_decoder": 3.35}


# ----------------------------------------------------------------------------------------------------------------------
# Alternative CPU formulations of the k4 s2 p1 transposed conv (the library keeps the fastest, see conv.py).
# ----------------------------------------------------------------------------------------------------------------------

# For output parity q and 3-window tap t over x padded by 1, the kernel tap used (None: no contribution).
_SUBPIXEL_TAP = {0: (3, 1, None), 1: (None, 2, 0)}


def _depth_to_space2(y: jax.Array) -> jax.Array:
    """(N, H, W, 2, 2, C) with axes (.., parity_y, parity_x, C) -> (N, 2H, 2W, C)."""
    n, h, w, _, _, c = y.shape
    return y.transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * w, c)


def convT_subpixel3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """k4 s2 p1 as ONE 3x3-window im2col conv to 4*Cout (5/9 of the taps are zeros) + depth-to-space."""
    n, h, w, cin = x.shape
    cout = kernel.shape[-1]
    zero = jnp.zeros((cin, cout), kernel.dtype)
    taps = [
        [
            jnp.stack(
                [
                    jnp.stack(
                        [
                            zero if ay is None or ax is None else kernel[ay, ax]
                            for ax in (_SUBPIXEL_TAP[0][tx], _SUBPIXEL_TAP[1][tx])
                        ],
                        axis=-2,
                    )
                    for ay in (_SUBPIXEL_TAP[0][ty], _SUBPIXEL_TAP[1][ty])
                ],
                axis=-3,
            )  # (Cin, 2, 2, Cout)
            for tx in range(3)
        ]
        for ty in range(3)
    ]
    k3 = jnp.stack([jnp.stack(row) for row in taps])  # (3, 3, Cin, 2, 2, Cout)
    patches = C.im2col(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), 3, 3, 1)
    y = jnp.dot(patches, k3.reshape(9 * cin, 4 * cout)).reshape(n, h, w, 2, 2, cout)
    return _depth_to_space2(y)


def convT_four2x2(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """k4 s2 p1 as four 2x2 im2col convs, one per output parity (q_y, q_x), + interleave.

    out[2m+q] = sum_t xpad[m+q+t] * w[3-q-2t] along each axis (xpad = x padded by 1).
    """
    n, h, w, cin = x.shape
    cout = kernel.shape[-1]
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    outs = []
    for qy in (0, 1):
        row = []
        for qx in (0, 1):
            k = kernel[np.array([3 - qy, 1 - qy])][:, np.array([3 - qx, 1 - qx])]  # (2, 2, Cin, Cout): taps t=0, 1
            patches = C.im2col(xp[:, qy : qy + h + 1, qx : qx + w + 1], 2, 2, 1)
            row.append(jnp.dot(patches, k.reshape(4 * cin, cout)))
        outs.append(jnp.stack(row, axis=3))
    return _depth_to_space2(jnp.stack(outs, axis=3))


def convT_dilated(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """k4 s2 p1 as zero-dilation + padding k-1-p, then a stride-1 im2col conv with the flipped kernel (3/4 zeros)."""
    k = kernel.shape[0]
    pad = k - 1 - 1
    xd = jax.lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (pad, pad, 1), (pad, pad, 1), (0, 0, 0)))
    return C.conv2d(xd, jnp.flip(kernel, (0, 1)), stride=1, padding=0, impl="fast")


CONVT_VARIANTS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "fast/scatter": lambda x, k: C._conv_transpose_fast(x, k, 2, 1, "scatter"),
    "subpixel3x3": convT_subpixel3x3,
    "four2x2": convT_four2x2,
    "dilated": convT_dilated,
}


def check_variants() -> None:
    """Every alternative formulation must equal the XLA reference before it is timed."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 5, 4, 3)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((4, 4, 3, 6)), jnp.float32)
    ref = C.conv_transpose2d(x, k, stride=2, padding=1, impl="xla")
    for name, fn in CONVT_VARIANTS.items():
        err = float(jnp.max(jnp.abs(fn(x, k) - ref)))
        if err > 1e-4:
            raise AssertionError(f"conv_transpose variant {name} differs from the xla reference by {err}")


# ----------------------------------------------------------------------------------------------------------------------
# Timing.
# ----------------------------------------------------------------------------------------------------------------------


def fwd_bwd(fn: Callable, args: tuple[jax.Array, ...]) -> Callable[[], object]:
    """A jitted call returning fn(*args) and the gradients of <fn(*args), ct> w.r.t. every arg."""
    out_shape = jax.eval_shape(fn, *args)
    ct = jax.random.normal(jax.random.key(1), out_shape.shape, out_shape.dtype)

    @jax.jit
    def step(ct_, *args_):
        out, vjp = jax.vjp(fn, *args_)
        return out, vjp(ct_)

    return lambda: jax.block_until_ready(step(ct, *args))


def time_call(call: Callable[[], object], reps: int) -> dict:
    t0 = time.perf_counter()
    call()
    first = time.perf_counter() - t0
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "times_s": times, "compile_and_first_s": first}


def randn(key: int, *shape: int) -> jax.Array:
    return jax.random.normal(jax.random.key(key), shape, jnp.float32)


def moe_decoder_case(impl: str, batch: int, frames: int) -> tuple[Callable, tuple, float]:
    """VDSM's MoE decoder: blend E experts' kernels per sequence, then 5 per-example transposed convs."""
    z_dim, n_experts = 30, 15
    chans = [z_dim + n_experts, 512, 256, 128, 64, 3]
    layers = list(zip(chans[:-1], chans[1:], strict=True))  # (Cin, Cout) per layer
    experts_w = [randn(10 + i, n_experts, 4, 4, cin, cout) * 0.05 for i, (cin, cout) in enumerate(layers)]
    experts_b = [jnp.zeros((n_experts, cout)) for cout in chans[1:]]
    x = randn(1, batch, frames, 1, 1, chans[0])
    weights = jax.nn.softmax(randn(2, batch, n_experts), axis=-1)

    def decoder(x, weights, experts_w, experts_b):
        h = x
        for i, (ew, eb) in enumerate(zip(experts_w, experts_b, strict=True)):
            kernels = jnp.einsum("be,e...->b...", weights, ew)
            biases = weights @ eb
            s, p = (1, 0) if i == 0 else (2, 1)
            if impl.startswith("fast/"):  # one 'fast' formulation forced for every layer with a spatial input
                b, nf, hh, ww, cin = h.shape
                form = "dot" if (hh, ww) == (1, 1) else impl.split("/")[1]
                y = C._conv_transpose_fast(h.reshape(b * nf, hh, ww, cin), kernels, s, p, form)
                h = y.reshape(b, nf, *y.shape[1:]) + biases[:, None, None, None, :]
            else:
                h = C.conv_transpose2d_per_example(h, kernels, biases, stride=s, padding=p, impl=impl)
            h = jax.nn.sigmoid(h) if i == len(experts_w) - 1 else jax.nn.leaky_relu(h, 0.01)
        return h

    macs = 0.0
    size = 1
    for i, (cin, cout) in enumerate(layers):
        macs += batch * frames * size * size * cin * cout * 16  # every input pixel scatters k*k taps
        macs += batch * n_experts * 16 * cin * cout  # kernel blending
        size = 4 if i == 0 else 2 * size
    return decoder, (x, weights, experts_w, experts_b), macs


def build_cases(batch: int, moe_batch: int, moe_frames: int, include_slow: bool) -> list[tuple[str, str, Callable]]:
    """(case, impl, thunk -> (fn, args, forward multiply-adds)); built lazily so arrays live one case at a time."""
    cases = []

    def conv_case(h, cin, cout, k, s, p, impl):
        def build():
            x, w = randn(1, batch, h, h, cin), randn(2, k, k, cin, cout) * 0.05
            ho = (h + 2 * p - k) // s + 1
            fn = lambda x_, w_: C.conv2d(x_, w_, stride=s, padding=p, impl=impl)
            return fn, (x, w), batch * ho * ho * k * k * cin * cout

        return build

    for impl in ("xla", "fast"):
        cases.append(("conv3x3_s1", impl, conv_case(32, 64, 128, 3, 1, 1, impl)))
    for impl in ("xla", "fast"):
        cases.append(("conv4x4_s2", impl, conv_case(32, 64, 128, 4, 2, 1, impl)))

    def convT_case(fn_of_impl):
        def build():
            x, w = randn(1, batch, 16, 16, 128), randn(2, 4, 4, 128, 64) * 0.05
            return fn_of_impl, (x, w), batch * 16 * 16 * 16 * 128 * 64

        return build

    for impl in ("xla", "fast"):
        fn = lambda x_, w_, impl=impl: C.conv_transpose2d(x_, w_, stride=2, padding=1, impl=impl)
        cases.append(("convT4x4_s2", impl, convT_case(fn)))
    for name, fn in CONVT_VARIANTS.items():
        cases.append(("convT4x4_s2", name, convT_case(fn)))

    for impl in ("fast", "fast/polyphase", "fast/scatter") + (("xla",) if include_slow else ()):
        cases.append(("moe_decoder", impl, lambda impl=impl: moe_decoder_case(impl, moe_batch, moe_frames)))

    def blur_case(impl):
        def build():
            x = randn(1, moe_batch * moe_frames, 63, 63, 32)
            return (lambda x_: C.blur_pool(x_, impl=impl)), (x,), moe_batch * moe_frames * 32 * 32 * 32 * 16

        return build

    for impl in ("xla", "fast"):
        cases.append(("blur_pool", impl, blur_case(impl)))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions per case (median reported)")
    parser.add_argument("--slow-reps", type=int, default=1, help="repetitions for cases known to take >5 s per call")
    parser.add_argument("--batch", type=int, default=320, help="batch of the single-op cases")
    parser.add_argument("--moe-batch", type=int, default=20, help="sequences for the MoE decoder")
    parser.add_argument("--moe-frames", type=int, default=8, help="frames per sequence for the MoE decoder")
    parser.add_argument("--include-slow", action="store_true", help="also time the xla MoE decoder (~40 s/call)")
    parser.add_argument("--only", default="", help="comma-separated case names to run (default: all)")
    parser.add_argument("--out", default="runs/conv_kernels.json", help="JSON output path")
    args = parser.parse_args()

    check_variants()
    only = {c for c in args.only.split(",") if c}
    slow = {("convT4x4_s2", "xla"), ("moe_decoder", "xla")}
    torch_comparable = (args.batch, args.moe_batch, args.moe_frames) == (320, 20, 8)
    results = []
    header = f"{'case':<13} {'impl':<15} {'fwd+bwd s':>10} {'GFLOP/s':>8} {'torch s':>8} {'vs torch':>9} {'compile+1st s':>14}"
    print(header)
    print("-" * len(header))
    for case, impl, build in build_cases(args.batch, args.moe_batch, args.moe_frames, args.include_slow):
        if only and case not in only:
            continue
        fn, fn_args, macs = build()
        reps = args.slow_reps if (case, impl) in slow else args.reps
        res = time_call(fwd_bwd(fn, fn_args), reps)
        del fn_args
        gflops = 3 * 2 * macs / res["median_s"] / 1e9  # fwd + two backward products
        torch_s = TORCH_SECONDS.get(case) if torch_comparable else None
        ratio = f"{res['median_s'] / torch_s:8.2f}x" if torch_s else f"{'':>9}"
        torch_txt = f"{torch_s:8.2f}" if torch_s else f"{'':>8}"
        print(
            f"{case:<13} {impl:<15} {res['median_s']:10.3f} {gflops:8.1f} {torch_txt} {ratio} "
            f"{res['compile_and_first_s']:14.2f}",
            flush=True,
        )
        results.append({"case": case, "impl": impl, "reps": reps, "fwd_macs": macs, "gflops": gflops, **res})

    report = {
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "loadavg_at_end": os.getloadavg(),
        "torch_seconds_reference": TORCH_SECONDS,
        "args": vars(args),
        "results": results,
    }
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
