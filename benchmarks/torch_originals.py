"""Seconds per optimiser step of the PyTorch originals' training steps, re-expressed in torch, on THIS machine.

    python benchmarks/torch_originals.py --reps 3 --out runs/torch_originals.json

Why: benchmarks/README.md gives the originals' seconds per step on the project's machine kind, but
machines of one kind differ (a 2048² sgemm in torch measured ≈190–200 GFLOP/s there; it measures what it
measures here, printed below). Running the originals' steps here, next to benchmarks/vdsm_step.py and
benchmarks/drnet_step.py, gives same-machine ratios; those scripts read this file's JSON (``--torch_json``).

What runs (torch CPU, float32, all cores, random inputs, the issue configurations): the networks of
tests/torch_reference_{vdsm,drnet}.py (the originals' modules and layouts), and
per step what the originals do per step (their training scripts):
  vdsm_stage1   bs 20, T 8, 64 px, Z 30, E 15: encoder on every frame, id_layers, reparameterised guide
                samples, the MoE decoder looping over the batch (each sequence blends its own kernels, as the
                original), Bernoulli pixel log-likelihood, the ID and z KL terms with their annealing factors,
                backward, Adam.
  vdsm_stage2   + rnn 512×3, D 50: frozen image networks (excluded from Adam by name, but still on the autograd
                path as in the original), bidirectional LSTM encoder, dynamics sample, seq2seq LSTM decoder,
                Combiner chain and GatedTransition prior stepped in Python over time, the decoder loop over the
                batch, backward, Adam.
  drnet_stage1  bs 100, 64 px, nc 3, content dcgan_unet, pose dcgan: the scene-discriminator update, then
                the main update (sim + rec + sd_weight·sd), Adam on EC, EP, D; BatchNorm in train mode.
  drnet_stage2  bs 100, 10 + 10 frames, LSTM 256×2: EC on frame n_past-1, EP on every frame (train-mode
                BatchNorm, detached), the LSTM teacher-forced over time, MSE, backward, Adam.
Not included: Pyro's own bookkeeping in VDSM (trace building, site scaling); the VDSM chains loop over time
but not over the batch (the original loops over both). Both omissions make these steps FASTER than the
originals, so ratios against them are conservative (they favour torch).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.common import machine_fields, write_report  # noqa: E402
from benchmarks.issue_configs import VDSM_ISSUE_CONFIG, drnet_issue_config  # noqa: E402

CASES = ("vdsm_stage1", "vdsm_stage2", "drnet_stage1", "drnet_stage2")


def _normal_log_prob(x, loc, scale):
    import math

    import torch

    return -((x - loc) ** 2) / (2 * scale**2) - torch.log(scale) - 0.5 * math.log(2 * math.pi)


def _bernoulli_log_prob(probs, target):
    """Pyro's Bernoulli(probs).log_prob on continuous targets: -BCE with logits = log(p) - log(1-p)."""
    import torch
    import torch.nn.functional as F

    eps = torch.finfo(probs.dtype).eps
    p = probs.clamp(eps, 1 - eps)
    logits = torch.log(p) - torch.log1p(-p)
    return -F.binary_cross_entropy_with_logits(logits, target, reduction="none")


def vdsm_step_fn(stage: int):
    """Build the stage's torch modules, optimiser and batch; return a zero-argument step function."""
    import torch
    import torch_reference_vdsm as ref

    c = VDSM_ISSUE_CONFIG
    b, t, e, z_dim, d = c["bs"], c["seq_len"], c["n_e_w"], c["z_dim"], c["dynamics_dim"]
    videos = torch.rand(b, t, c["nc"], c["image_size"], c["image_size"])
    temp, anneal_id, anneal_t, anneal_dyn = 5.0, 0.5, 1.0, 0.5
    if stage == 1:
        net = ref.VDSMEncDec(z_dim, e, c["nc"])
        enc, dec, id_layers = net.enc, net.dec, net.id_layers
        optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    else:
        net = ref.VDSMSeq(z_dim, e, d, c["rnn_dim"], c["rnn_layers"], 0.2, c["nc"])
        enc, dec, id_layers = net.image_enc, net.image_dec, net.id_layers
        trained = [p for name, p in net.named_parameters() if "image" not in name]
        optimiser = torch.optim.Adam(trained, lr=1e-3)
    net.train()

    def identity_terms():
        z_loc, z_scale, id_loc, id_scale = ref.encode_frames(enc, id_layers, videos)
        ids = id_loc + id_scale * torch.randn_like(id_loc)
        kl_id = (_normal_log_prob(ids, id_loc, id_scale) - _normal_log_prob(ids, 0.0, torch.tensor(1.0 / e))).sum()
        return z_loc, z_scale, torch.softmax(temp * ids, -1), anneal_id * kl_id

    def step():
        optimiser.zero_grad()
        z_loc, z_scale, w, kl_id = identity_terms()
        if stage == 1:
            z = z_loc + z_scale * torch.randn_like(z_loc)
            kl_z = (_normal_log_prob(z, z_loc, z_scale) - _normal_log_prob(z, 0.0, torch.tensor(1.0))).sum()
            kl = kl_id + anneal_t * kl_z
        else:
            dz_loc, dz_scale = net.dynamics_posterior(z_loc)
            dz = dz_loc + dz_scale * torch.randn_like(dz_loc)
            kl_dz = (_normal_log_prob(dz, dz_loc, dz_scale) - _normal_log_prob(dz, 0.0, torch.tensor(1.0 / d))).sum()
            lstm_out = net.dynamics_rnn(dz, t)
            z_prev, zs, kl_z = net.z_q_0.expand(b, z_dim), [], 0.0
            for k in range(t):
                loc, scale = net.comb(lstm_out[:, k], dz, z_prev)
                z_k = loc + scale * torch.randn_like(loc)
                if k == 0:
                    prior_loc, prior_scale, factor = torch.zeros_like(loc), torch.ones_like(scale), 1.0
                else:
                    (prior_loc, prior_scale), factor = net.transitions(z_prev, dz), anneal_t
                kl_k = (_normal_log_prob(z_k, loc, scale) - _normal_log_prob(z_k, prior_loc, prior_scale)).sum()
                kl_z = kl_z + factor * kl_k
                zs.append(z_k)
                z_prev = z_k
            z = torch.stack(zs, 1)
            kl = kl_id + anneal_dyn * kl_dz + kl_z
        probs = dec(z, w)
        nll = -_bernoulli_log_prob(probs, videos).sum()
        loss = nll + kl
        loss.backward()
        optimiser.step()
        return loss.item()

    return step


def drnet_step_fn(stage: int):
    import torch
    import torch.nn.functional as F
    import torch_reference_drnet as ref

    config = drnet_issue_config(stage)
    nets = ref.stage1_networks(config, seed=0, perturb=False)
    ec, ep, dec, disc = (nets[k] for k in ("netEC", "netEP", "netD", "netC"))
    for net in nets.values():
        net.train()
    bs, size, nc = config.batch_size, config.image_width, config.channels
    adam = lambda params: torch.optim.Adam(params, lr=config.lr, betas=(config.beta1, 0.999))

    if stage == 1:
        x = [torch.rand(bs, nc, size, size) for _ in range(4)]
        opt_main = adam(list(ec.parameters()) + list(ep.parameters()) + list(dec.parameters()))
        opt_disc = adam(disc.parameters())
        half = bs // 2

        def step():
            disc.zero_grad()
            h_p1, h_p2 = ep(x[0]).detach(), ep(x[1]).detach()
            h_p2 = torch.cat([h_p2[:half][torch.randperm(half)], h_p2[half:]])
            target = torch.cat([torch.ones(half, 1), torch.zeros(bs - half, 1)])
            F.binary_cross_entropy(disc([h_p1, h_p2]), target).backward()
            opt_disc.step()

            ec.zero_grad(), ep.zero_grad(), dec.zero_grad()
            h_c1 = ec(x[0])
            h_c2 = ec(x[1])[0].detach()
            h_p1, h_p2 = ep(x[2]), ep(x[3]).detach()
            sim = F.mse_loss(h_c1[0], h_c2)
            rec = F.mse_loss(dec([h_c1, h_p1]), x[2])
            sd = F.binary_cross_entropy(disc([h_p1, h_p2]), torch.full((bs, 1), 0.5))
            loss = sim + rec + config.sd_weight * sd
            loss.backward()
            opt_main.step()
            return loss.item()

        return step

    frames = config.n_past + config.n_future
    x = [torch.rand(bs, nc, size, size) for _ in range(frames)]
    lstm = ref.lstm_network(config, bs)
    lstm.train()
    optimiser = adam(lstm.parameters())

    def step():
        lstm.zero_grad()
        lstm.hidden = lstm.init_hidden()
        h_c = ec(x[config.n_past - 1])[0].detach()
        h_p = [ep(x[i]).detach() for i in range(frames)]
        mse = 0.0
        for i in range(1, frames):
            pred = lstm(torch.cat([h_p[i - 1], h_c], 1).view(bs, -1))
            mse = mse + F.mse_loss(pred, h_p[i].view(bs, -1))
        mse.backward()
        optimiser.step()
        return mse.item()

    return step


def sgemm_gflops(size: int = 2048, reps: int = 5) -> float:
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * size**3 * reps / (time.perf_counter() - start) / 1e9


def time_case(case: str, reps: int) -> dict:
    import torch

    torch.manual_seed(0)
    model, stage = case.split("_stage")
    step = (vdsm_step_fn if model == "vdsm" else drnet_step_fn)(int(stage))
    load_before = os.getloadavg()
    start = time.perf_counter()
    loss = step()  # warm-up (allocator, oneDNN primitive caches)
    warmup_s = time.perf_counter() - start
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - start)
    return {
        "case": case,
        "step_s": statistics.median(times),
        "min_s": min(times),
        "times_s": times,
        "warmup_s": warmup_s,
        "final_loss": loss,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }


def add_torch_json_flag(parser: argparse.ArgumentParser) -> None:
    """The JAX step benchmarks' ``--torch_json``: a report of this script from the same machine."""
    parser.add_argument(
        "--torch_json",
        default="",
        help="a benchmarks/torch_originals.py report from this machine: adds same-machine ratios",
    )


def same_machine_fields(torch_seconds: dict[str, float], case: str, step_s: float) -> dict[str, float]:
    """``torch_here_s`` and ``ratio_to_torch_here`` of a JAX step of ``step_s`` seconds, if the report has ``case``."""
    if case not in torch_seconds:
        return {}
    return {"torch_here_s": torch_seconds[case], "ratio_to_torch_here": step_s / torch_seconds[case]}


def load_torch_seconds(path: str | os.PathLike) -> dict[str, float]:
    """{case: seconds per step} from this script's JSON output (for the JAX benchmarks' same-machine ratios)."""
    report = json.loads(pathlib.Path(path).read_text())
    if report.get("benchmark") != "torch_originals":
        raise ValueError(f"{path}: not a benchmarks/torch_originals.py report (no 'benchmark': 'torch_originals')")
    return {r["case"]: r["step_s"] for r in report["results"]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--reps", type=int, default=3, help="timed steps per case (after one warm-up step)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    parser.add_argument("--out", default="runs/torch_originals.json", help="JSON output path ('' to skip)")
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error("--reps must be >= 1")
    sys.path.insert(0, str(REPO / "tests"))
    import torch

    torch.set_num_threads(args.threads)
    sgemm = sgemm_gflops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, 2048² sgemm {sgemm:.0f} GFLOP/s")
    results = []
    for case in args.cases:
        result = time_case(case, args.reps)
        results.append(result)
        print(f"{case:<13} {result['step_s']:7.3f} s/step (min {result['min_s']:.3f}, loss {result['final_loss']:.4g})")
    report = {
        "benchmark": "torch_originals",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        **machine_fields(),
        "sgemm_gflops": sgemm,
        "args": vars(args),
        "results": results,
    }
    return write_report(args.out, report)


if __name__ == "__main__":
    main()
