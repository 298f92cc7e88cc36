"""The originals' OWN code against this library, at full size and in batches: a fidelity check to run by hand.

    pip install -e ".[bench]"
    python -m benchmarks.original_parity --original-vdsm path/to/DisentanglingSequences \\
        --original-drnet path/to/drnet-py --json runs/original_parity.json

The parity tests in tests/ compare against a PyTorch re-expression of the originals (CI has no copy of the
originals); this script closes that gap with the originals' own modules (imported as they are, on CPU through
benchmarks/originals.py). Random networks at the README configurations (seeded; every zero-initialised
parameter drawn at random, decoders rescaled so pixels vary at order 1) are saved in the originals' checkpoint
formats, loaded through this library's importers, and run on a batch of B clips (default 4, with T 8 frames:
B != rnn_layers, T != B), then one clip at a time:

VDSM (`VDSM_Seq`, MUG-FED README sizes: z 30, n_e_w 15, dynamics 50, rnn 512x3, 64 px):
  dz_loc, the test-time latent chain (`VDSM_Seq.test_sequence`), the sequences generated from the inferred
  dynamics and decoded with each clip's identity (the original's test-time generation), and the identity x
  dynamics swap of every pair (`swap_id_generate_sequence`).
DRNet (Moving MNIST sizes: dcgan_unet content 128, dcgan pose 10, LSTM 256x2; authors' files: the stage-1
  `model.pth` of whole modules, the stage-2 `lstm/<name>/model.pth` beside it): content, skips and pose codes,
  decoded frames, the analogy of every pair, and `plot_gen`'s prediction (condition on n_past frames, feed the
  LSTM's predictions back), with BatchNorm in eval mode (running averages) and in train mode (the original's
  stage 2, `batch_statistics=True` here).

Prints a table of the largest absolute differences and writes them as JSON (`--json`).

One adaptation to today's torch, outside the originals' files: drnet-py's `plot_gen` concatenates the LSTM's
(B, pose_dim) prediction with (B, dim, 1, 1) codes, which the torch of its time accepted and today's refuses;
the prediction is passed on as (B, pose_dim, 1, 1), the same numbers.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
from typing import Any

import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.common import machine_fields, write_report  # noqa: E402
from benchmarks.originals import (  # noqa: E402
    build_drnet,
    build_vdsm,
    cpu_shims,
    import_drnet_original,
    import_vdsm_original,
)


def _config_file(path: str, arg: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location("parity_config", REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def _smooth_videos(seed: int, batch: int, frames: int, channels: int = 3) -> np.ndarray:
    """(batch, frames, 64, 64, channels) float32 in [0, 1]: smooth random images plus pixel noise."""
    import torch

    rng = np.random.default_rng(seed)
    low = torch.from_numpy(rng.uniform(size=(batch * frames, channels, 8, 8)).astype(np.float32))
    smooth = torch.nn.functional.interpolate(low, size=64, mode="bilinear").numpy().transpose(0, 2, 3, 1)
    noisy = np.clip(smooth + 0.05 * rng.normal(size=smooth.shape), 0.0, 1.0)
    return noisy.reshape(batch, frames, 64, 64, channels).astype(np.float32)


def _nchw(videos: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(videos.transpose(0, 1, 4, 2, 3)))


def _max_abs(ours, theirs) -> float:
    ours = np.asarray(ours, np.float64)
    theirs = np.asarray(theirs, np.float64)
    if ours.shape != theirs.shape:
        raise AssertionError(f"shapes differ: ours {ours.shape}, original {theirs.shape}")
    return float(np.max(np.abs(ours - theirs)))


def _worst(into: dict[str, float], name: str, value: float) -> None:
    """Keep the largest difference seen under `name` (over the clips run one at a time)."""
    into[name] = max(into.get(name, 0.0), value)


def _randomize_zeros(module, generator, scale: float = 0.1) -> None:
    """Parameters the original initialises to zero (biases, learned initial states) get seeded random values."""
    import torch

    with torch.no_grad():
        for param in module.parameters():
            if not param.any():
                param.copy_(scale * torch.randn(param.shape, generator=generator))


# ---------------------------------------------------------------------------------------------------------------------
# VDSM
# ---------------------------------------------------------------------------------------------------------------------


def vdsm_parity(original_path: str, batch: int, seq_len: int, workdir: pathlib.Path) -> dict[str, Any]:
    import torch

    from vdsm_jax.api import VDSM

    config = _config_file("configs/vdsm/mug_fed.py", "stage2")
    z, e, d, h, layers = config.z_dim, config.n_e_w, config.dynamics_dim, config.rnn_dim, config.rnn_layers
    temperature = float(config.test_temp_id)
    orig = import_vdsm_original(original_path)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    nets = build_vdsm(orig, z, e, d, h, layers, seq_len, rnn_dropout=config.rnn_dropout, temp_min=temperature)
    seq, enc, dec = nets.seq, nets.enc, nets.dec
    _randomize_zeros(seq, generator)
    with torch.no_grad():  # an order-1 decoder and an encoder whose identity activations do not shrink its codes
        for k in range(1, 6):
            kernels = getattr(dec, f"EW{k}")
            taps = 1 if k == 1 else 4
            kernels.copy_(torch.randn(kernels.shape, generator=generator) * (2.0 / (kernels.shape[1] * taps)) ** 0.5)
        for layer in enc.encoder:
            if isinstance(layer, torch.nn.Conv2d):
                layer.weight.mul_(2.0)
    seq.eval()
    path = workdir / "3_VDSM_seq.pth"
    optimizer = torch.optim.Adam([p for n, p in seq.named_parameters() if "image" not in n], lr=1e-3)
    torch.save({"epoch": 3, "model": seq.state_dict(), "optimizer": optimizer.state_dict()}, path)
    model = VDSM.from_checkpoint(path, config)

    videos = _smooth_videos(2, batch, seq_len)

    @torch.no_grad()
    def original(clips: np.ndarray) -> dict[str, np.ndarray]:
        """The original's test-time generation (train_test.py, `Trainer_Tester.test`): identity = softmax(temp ·
        mean_t id_layers(frame codes)), futures = VDSM_Seq.test_sequence, decoded per clip by image_dec."""
        b, t = clips.shape[:2]
        frames = _nchw(clips).reshape(b * t, 3, 64, 64)
        loc, _, ident, ident_scale = seq.image_enc.forward(frames)
        ident, _ = seq.id_layers(ident, ident_scale)
        ident = torch.softmax(temperature * ident.view(b, t, -1).mean(1), -1)
        futures = seq.test_sequence(loc.view(b, t, -1).permute(1, 0, 2), t).permute(1, 0, 2)
        dz_loc = seq.return_dynamics(loc.view(b, t, -1).permute(1, 0, 2))
        decode = lambda dyn, ide: seq.image_dec.forward(futures[dyn], ident[ide][:, None]).view(t, 3, 64, 64)
        recon = torch.stack([decode(i, i) for i in range(b)])
        swap = torch.stack([decode(i, j) for i in range(b) for j in range(b)])  # row i·b + j: dynamics i, identity j
        nhwc = lambda x: x.numpy().transpose(0, 1, 3, 4, 2)
        return {
            "identity": ident.numpy(),
            "dz_loc": dz_loc.numpy(),
            "chain": futures.numpy(),
            "reconstruct": nhwc(recon),
            "swap": nhwc(swap),
        }

    def ours(clips: np.ndarray) -> dict[str, np.ndarray]:
        b = clips.shape[0]
        codes = model.encode(clips)
        chain = model.modules.latent_chain_from_dynamics(model.params, codes["dynamics"], clips.shape[1])
        dynamics_from = np.repeat(clips, b, axis=0)
        identity_from = np.tile(clips, (b, 1, 1, 1, 1))
        return {
            "identity": codes["identity"],
            "dz_loc": codes["dynamics"],
            "chain": np.asarray(chain),
            "reconstruct": model.reconstruct(clips),
            "swap": model.swap(identity_from, dynamics_from),
        }

    theirs, mine = original(videos), ours(videos)
    result: dict[str, Any] = {
        "config": {"z_dim": z, "n_e_w": e, "dynamics_dim": d, "rnn_dim": h, "rnn_layers": layers, "batch": batch},
        "seq_len": seq_len,
        "chain_range": float(np.ptp(theirs["chain"])),
        "chain_t0_range": float(np.ptp(theirs["chain"][:, 0])),
        "batch": {name: _max_abs(mine[name], theirs[name]) for name in theirs},
    }
    result["batch"]["chain_t0"] = _max_abs(mine["chain"][:, 0], theirs["chain"][:, 0])
    result["alone"], result["original_alone_vs_batch"] = {}, {}
    for i in range(batch):
        one_theirs, one_mine = original(videos[i : i + 1]), ours(videos[i : i + 1])
        for name in ("identity", "dz_loc", "chain", "reconstruct"):
            _worst(result["alone"], name, _max_abs(one_mine[name], one_theirs[name]))
            if name != "identity":  # the original itself: the clip alone against the clip inside its batch
                _worst(result["original_alone_vs_batch"], name, _max_abs(one_theirs[name][0], theirs[name][i]))
    return result


# ---------------------------------------------------------------------------------------------------------------------
# DRNet
# ---------------------------------------------------------------------------------------------------------------------


def drnet_parity(original_path: str, batch: int, workdir: pathlib.Path, n_past: int = 5, n_future: int = 6):
    import argparse as _argparse

    import torch

    from drnet_jax.api import DRNet

    config = _config_file("configs/drnet/moving_mnist.py", "stage2")
    config.n_past, config.n_future = n_past, n_future
    c_dim, p_dim, nc = config.content_dim, config.pose_dim, config.channels
    torch.manual_seed(3)
    generator = torch.Generator().manual_seed(4)
    nets = build_drnet(
        import_drnet_original(original_path),
        "dcgan_unet",
        "dcgan",
        c_dim,
        p_dim,
        nc,
        rnn_size=config.rnn_size,
        rnn_layers=config.rnn_layers,
        batch_size=batch,
    )
    net_ec, net_ep, net_d, lstm = (nets[k] for k in ("netEC", "netEP", "netD", "lstm"))
    for net in (net_ec, net_ep, net_d, lstm):
        _randomize_zeros(net, generator)
    videos = _smooth_videos(5, batch, n_past + n_future)
    x = [torch.from_numpy(np.ascontiguousarray(videos[:, t].transpose(0, 3, 1, 2))) for t in range(videos.shape[1])]
    with torch.no_grad():  # non-trivial BatchNorm running averages: train-mode passes over the clips' frames
        for frames in x:
            h_c = net_ec(frames)
            net_d([h_c, net_ep(frames)])
    stage1_opt = _argparse.Namespace(
        content_model="dcgan_unet",
        pose_model="dcgan",
        content_dim=c_dim,
        pose_dim=p_dim,
        channels=nc,
        image_width=64,
        normalize=False,
        dataset="moving_mnist",
    )
    run = workdir / "drnet_run"
    (run / "lstm" / "parity").mkdir(parents=True)
    torch.save({"netD": net_d, "netEP": net_ep, "netEC": net_ec, "opt": stage1_opt}, run / "model.pth")
    lstm_opt = _argparse.Namespace(
        model_path=str(run),
        rnn_size=config.rnn_size,
        rnn_layers=config.rnn_layers,
        pose_dim=p_dim,
        content_dim=c_dim,
        image_width=64,
        normalize=False,
        n_past=n_past,
        n_future=n_future,
    )
    torch.save({"lstm": lstm, "opt": lstm_opt}, run / "lstm" / "parity" / "model.pth")
    lstm_file = run / "lstm" / "parity" / "model.pth"
    eval_model = DRNet.from_checkpoint(lstm_file, config)
    train_model = DRNet.from_checkpoint(lstm_file, config, batch_statistics=True)
    nhwc = lambda t: t.numpy().transpose(0, 2, 3, 1)

    @torch.no_grad()
    def original(clips: list, train: bool) -> dict[str, np.ndarray]:
        """EC, EP, D on the clips' frames; `plot_gen` (train_lstm.py): the LSTM conditioned on the first n_past
        poses, then fed its own predictions, decoded with the content and skips of frame n_past-1."""
        for net in (net_ec, net_ep, net_d):
            net.train(train)
        b = clips[0].shape[0]
        lstm.batch_size = b
        h_c, skips = net_ec(clips[0])
        h_p = net_ep(clips[1])
        out = {
            "content": h_c.reshape(b, -1).numpy(),
            "skips": np.concatenate([nhwc(s).reshape(b, -1) for s in skips], 1),
            "pose": h_p.reshape(b, -1).numpy(),
            "decode": nhwc(net_d([(h_c, skips), h_p])),
        }
        h_gen = net_ec(clips[n_past - 1])
        lstm.hidden = lstm.init_hidden()
        pose = net_ep(clips[0])
        generated = []
        for i in range(1, n_past + n_future):
            if i < n_past:
                lstm(torch.cat([pose, h_gen[0]], 1))
                pose = net_ep(clips[i])
            else:  # the (B, pose_dim) prediction as the (B, pose_dim, 1, 1) code EP gives (see the docstring)
                pose = lstm(torch.cat([pose, h_gen[0]], 1)).view(b, -1, 1, 1)
                generated.append(nhwc(net_d([h_gen, pose])))
        out["predict"] = np.stack(generated, 1)
        if not train:  # plot_analogy's rows: content of clip i's frame 0, the pose of clip 0 at every step
            poses = torch.stack([net_ep(frames)[:1].expand(b, -1, -1, -1) for frames in clips], 0)
            out["analogy"] = np.stack([nhwc(net_d([(h_c, skips), p])) for p in poses], 1)
        return out

    def ours(model: DRNet, clips: np.ndarray, train: bool) -> dict[str, np.ndarray]:
        b = clips.shape[0]
        code = model.content(clips[:, 0])
        poses = model.pose(clips[:, 1])
        out = {
            "content": code["content"],
            "skips": np.concatenate([s.reshape(b, -1) for s in code["skips"]], 1),
            "pose": poses,
            "decode": model.decode(code, poses),
            "predict": model.predict(clips[:, :n_past], n_future, chunk_size=4),
        }
        if not train:
            out["analogy"] = model.analogy(clips[:, 0], np.repeat(clips[:1], b, axis=0))
        return out

    result: dict[str, Any] = {
        "config": {
            "content_dim": c_dim,
            "pose_dim": p_dim,
            "rnn_size": config.rnn_size,
            "rnn_layers": config.rnn_layers,
        },
        "batch_size": batch,
        "n_past": n_past,
        "n_future": n_future,
        "batch": {},
        "alone": {},
    }
    theirs, mine = original(x, train=False), ours(eval_model, videos, train=False)
    result["batch"].update({f"eval/{k}": _max_abs(mine[k], theirs[k]) for k in theirs})
    for i in range(batch):
        one_theirs = original([f[i : i + 1] for f in x], train=False)
        one_mine = ours(eval_model, videos[i : i + 1], train=False)
        for k in ("content", "skips", "pose", "decode", "predict"):
            _worst(result["alone"], f"eval/{k}", _max_abs(one_mine[k], one_theirs[k]))
    theirs, mine = original(x, train=True), ours(train_model, videos, train=True)
    result["batch"].update({f"train/{k}": _max_abs(mine[k], theirs[k]) for k in theirs})
    return result


# ---------------------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------------------


def _table(report: dict[str, Any]) -> str:
    lines = ["| model | output | batch of B: max abs diff | one clip at a time |", "|---|---|---|---|"]
    for model in ("vdsm", "drnet"):
        part = report.get(model)
        if not part:
            continue
        for name, value in part["batch"].items():
            alone = part.get("alone", {}).get(name)
            lines.append(f"| {model} | {name} | {value:.3g} | {'' if alone is None else f'{alone:.3g}'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--original-vdsm", help="a checkout of matthewvowels1/DisentanglingSequences")
    parser.add_argument("--original-drnet", help="a checkout of edenton/drnet-py")
    parser.add_argument("--batch", type=int, default=4, help="clips per batch (default 4)")
    parser.add_argument("--seq_len", type=int, default=8, help="frames per clip (default 8)")
    parser.add_argument("--json", default="", help="write the report here")
    args = parser.parse_args(argv)
    if not (args.original_vdsm or args.original_drnet):
        parser.error("give --original-vdsm and/or --original-drnet")
    import torch

    report: dict[str, Any] = {**machine_fields(), "torch": torch.__version__}
    with cpu_shims(), tempfile.TemporaryDirectory() as tmp:
        if args.original_vdsm:
            report["vdsm"] = vdsm_parity(args.original_vdsm, args.batch, args.seq_len, pathlib.Path(tmp))
        if args.original_drnet:
            report["drnet"] = drnet_parity(args.original_drnet, args.batch, pathlib.Path(tmp))
    print(_table(report))
    print(json.dumps({k: v for k, v in report.items() if k in ("vdsm", "drnet")}, indent=1))
    return write_report(args.json, report)


if __name__ == "__main__":
    main()
