"""Where a DRNet stage-1 step spends its time: each network's forward + backward, JAX against torch.

    python -m benchmarks.drnet_parts [--batch_size 32] [--reps 7] [--conv_impl fast xla] [--parts EC "EP fwd" ...]

Times, at the benchmark configuration (configs/drnet/moving_mnist.py: dcgan_unet content, dcgan pose, 64 px,
3 channels) and the given batch, one jitted forward + backward (BatchNorm on batch statistics, gradient of the
sum of the outputs with respect to the network's parameters and, for the encoders, nothing else) of the content
encoder EC, the pose encoder EP and the decoder D, and the same in torch on the re-expressed networks
(tests/torch_reference_drnet.py), median of `reps` after a warm-up; plus XLA's FLOP count of each JAX program
and the 2048² float32 matmul peak of both libraries, measured in the same process. A stage-1 step runs EC
twice (one with gradient), EP four times (two with gradient), D once and the scene discriminator's tiny MLP.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from benchmarks.common import jax_matmul_peak, torch_matmul_peak
from benchmarks.issue_configs import ISSUE_SIZES, drnet_config
from vdcore.host_memory import keep_freed_memory

PARTS = ("EC", "EP", "D", "EC fwd", "EP fwd")


def _median_seconds(run: Any, reps: int) -> float:
    run()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def jax_parts(batch_size: int, conv_impl: str, reps: int, parts: Sequence[str]) -> dict[str, dict[str, float]]:
    from drnet_jax.models import DRNetModules

    config = drnet_config(1, {**ISSUE_SIZES["drnet"], "batch_size": batch_size}, conv_impl)
    modules = DRNetModules.from_config(config)
    params, stats = jax.jit(modules.init_stage1)(jax.random.key(0))
    s, nc = config.image_width, config.channels
    frames = jax.random.uniform(jax.random.key(1), (batch_size, s, s, nc))
    (h_c, skips), _ = modules.encode_content(params, stats, frames, train=True)
    h_p = jnp.zeros((batch_size, config.pose_dim))

    def grad_of(net: str, forward: Any) -> Any:
        def loss(p):
            out = forward({**params, net: p})
            return sum(jnp.sum(leaf) for leaf in jax.tree.leaves(out))

        return jax.jit(jax.grad(loss))

    programs = {
        "EC": grad_of("content_encoder", lambda p: modules.encode_content(p, stats, frames, train=True)[0]),
        "EP": grad_of("pose_encoder", lambda p: modules.encode_pose(p, stats, frames, train=True)[0]),
        "D": grad_of("decoder", lambda p: modules.decode(p, stats, h_c, skips, h_p, train=True)[0]),
        "EC fwd": jax.jit(lambda p: modules.encode_content(p, stats, frames, train=True)[0]),
        "EP fwd": jax.jit(lambda p: modules.encode_pose(p, stats, frames, train=True)[0]),
    }
    network = {"EC": "content_encoder", "EP": "pose_encoder", "D": "decoder"}
    out = {}
    for name in parts:
        fn = programs[name]
        arg = params[network[name.split()[0]]] if " " not in name else params
        compiled = fn.lower(arg).compile()
        flops = (compiled.cost_analysis() or {}).get("flops", float("nan"))
        seconds = _median_seconds(lambda fn=fn, arg=arg: jax.block_until_ready(fn(arg)), reps)
        out[name] = {"s": seconds, "gflop": flops / 1e9, "gflop_s": flops / 1e9 / seconds}
    return out


def torch_parts(batch_size: int, reps: int, parts: Sequence[str]) -> dict[str, dict[str, float]]:
    import torch

    from benchmarks.torch_cases import _reference

    ref = _reference("drnet")
    config = drnet_config(1, {**ISSUE_SIZES["drnet"], "batch_size": batch_size})
    nets = ref.stage1_networks(config, seed=0, perturb=False)
    s, nc = config.image_width, config.channels
    frames = torch.rand(batch_size, nc, s, s)
    with torch.no_grad():
        h_c, skips = nets["netEC"](frames)
    h_p = torch.zeros(batch_size, config.pose_dim, 1, 1)

    def backward(net: str, forward: Any) -> Any:
        def run():
            nets[net].zero_grad(set_to_none=True)
            out = forward()
            total = sum(t.sum() for t in (out if isinstance(out, (list, tuple)) else [out]))
            total.backward()

        return run

    def flat(out):
        return [out[0], *out[1]] if isinstance(out, tuple) else out

    runs = {
        "EC": backward("netEC", lambda: flat(nets["netEC"](frames))),
        "EP": backward("netEP", lambda: nets["netEP"](frames)),
        "D": backward("netD", lambda: nets["netD"](((h_c, skips), h_p))),
    }

    def no_grad(net):
        def run():
            with torch.no_grad():
                nets[net](frames)

        return run

    runs["EC fwd"], runs["EP fwd"] = no_grad("netEC"), no_grad("netEP")
    return {name: {"s": _median_seconds(runs[name], reps)} for name in parts}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--conv_impl", nargs="+", default=["fast", "xla"], choices=["fast", "xla"])
    parser.add_argument(
        "--parts",
        nargs="+",
        default=list(PARTS),
        choices=PARTS,
        help="which programs to time (e.g. --parts 'EP fwd' --batch_size 2000: the frozen pose encoder over the "
        "10 + 10 frames of a stage-2 batch of 100)",
    )
    args = parser.parse_args(argv)
    keep_freed_memory()
    peaks = {"jax": jax_matmul_peak()["best_gflops"], "torch": torch_matmul_peak()["best_gflops"]}
    torch_times = torch_parts(args.batch_size, args.reps, args.parts)
    jax_times = {impl: jax_parts(args.batch_size, impl, args.reps, args.parts) for impl in args.conv_impl}
    print(f"batch {args.batch_size}; 2048² matmul peak GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()))
    print(
        "| part | torch s | " + " | ".join(f"JAX {i} s | GFLOP | % of peak | JAX/torch" for i in args.conv_impl) + " |"
    )
    print("|---|---|" + "---|---|---|---|" * len(args.conv_impl))
    for part, row in torch_times.items():
        cells = [part, f"{row['s']:.4f}"]
        for impl in args.conv_impl:
            j = jax_times[impl][part]
            cells += [
                f"{j['s']:.4f}",
                f"{j['gflop']:.1f}",
                f"{100 * j['gflop_s'] / peaks['jax']:.0f}",
                f"{j['s'] / row['s']:.2f}",
            ]
        print("| " + " | ".join(cells) + " |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
