"""The PyTorch re-expression of every benchmark case, and the DRNet step and prediction loops both torch sides run.

The re-expression (side 'reexpression') runs the networks of tests/torch_reference_{vdsm,drnet}.py (the originals'
modules and layouts, written for the parity tests) through what the originals do per call:

  vdsm_stage1    encoder on every frame, id_layers, reparameterised guide samples, the MoE decoder looping over
                 the batch (each sequence blends its own kernels, as the original), Bernoulli pixel
                 log-likelihood, the ID and z KL terms with their annealing factors, backward, Adam.
  vdsm_stage2    + frozen image networks (excluded from Adam by name, still on the autograd path as in the
                 original), bidirectional LSTM encoder, dynamics sample, seq2seq LSTM decoder, Combiner chain and
                 GatedTransition prior stepped in Python over time, the decoder loop, backward, Adam.
  vdsm_swap      the original's `swap_id_generate_sequence` without its pictures: encode the test batch, its latent
                 chains (`test_sequence`), then decode every (dynamics i, identity j) pair.
  vdsm_generate  the original's `sample_sequence`: identity and dynamics from their priors, z_0 ~ N(0, 1) and the
                 GatedTransition chain per clip and step, then decode.
  drnet_stage1   `train_scene_discriminator`, then `train` (train_drnet.py): sim + rec + sd_weight·sd, Adam.
  drnet_stage2   `train` of train_lstm.py: EC on frame n_past-1, EP on every frame (train-mode BatchNorm,
                 detached), the LSTM teacher-forced over time, MSE, backward, Adam.
  drnet_predict  `plot_gen` (train_lstm.py) for predict_steps frames: condition the LSTM on n_past poses, then feed
                 its predictions back, decoding each with the content and skips of frame n_past-1.

Left out of the VDSM re-expression: Pyro's own bookkeeping (trace building, site scaling), and its chains loop over
time but not over the batch (the original loops over both): it is if anything faster than the original. The
evaluation paths run under `torch.no_grad()` with BatchNorm on its running averages on both torch sides (the
original's own test code keeps autograd on, which only costs torch time), as the JAX side computes them.
Everything runs on the CPU, float32, with torch's default thread count (all cores).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.cases import Case, side_builders
from benchmarks.common import torch_device
from benchmarks.issue_configs import REPO, VDSM_FIXED, drnet_config

# The anneal and temperature values of a step (mid-schedule values; a step's cost does not depend on them).
TEMP_ID, ANNEAL_ID, ANNEAL_T, ANNEAL_DYNAMICS = 5.0, 0.5, 1.0, 0.5
TEST_TEMP_ID = 10.0


def _reference(name: str):
    """tests/torch_reference_<name>.py, the re-expression's networks."""
    if str(REPO / "tests") not in sys.path:
        sys.path.insert(0, str(REPO / "tests"))
    return __import__(f"torch_reference_{name}")


def _normal_log_prob(x, loc, scale):
    return -((x - loc) ** 2) / (2 * scale**2) - torch.log(scale) - 0.5 * math.log(2 * math.pi)


def _bernoulli_log_prob(probs, target):
    """Pyro's Bernoulli(probs).log_prob on continuous targets: -BCE with logits = log(p) - log(1-p)."""
    eps = torch.finfo(probs.dtype).eps
    p = probs.clamp(eps, 1 - eps)
    logits = torch.log(p) - torch.log1p(-p)
    return -F.binary_cross_entropy_with_logits(logits, target, reduction="none")


def _videos(batch: int, frames: int, nc: int = 3, size: int = 64) -> torch.Tensor:
    """Uniform noise clips (batch, frames, nc, size, size) in [0, 1]."""
    return torch.rand(batch, frames, nc, size, size)


def _loss_case(step: Callable[[], float], clips: int) -> Case:
    return Case(run=step, clips=clips, device=torch_device(), summary=lambda loss: {"loss": float(loss)})


def vdsm_step(stage: int, sizes: dict[str, int]) -> Case:
    """The re-expressed optimiser step of `stage` (module docstring) on a (bs, seq_len, 3, 64, 64) noise batch."""
    ref = _reference("vdsm")
    b, t, e, z_dim, d = (sizes[k] for k in ("bs", "seq_len", "n_e_w", "z_dim", "dynamics_dim"))
    videos = _videos(b, t, VDSM_FIXED["nc"], VDSM_FIXED["image_size"])
    if stage == 1:
        net = ref.VDSMEncDec(z_dim, e, VDSM_FIXED["nc"])
        enc, dec, id_layers = net.enc, net.dec, net.id_layers
        optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    else:
        net = ref.VDSMSeq(z_dim, e, d, sizes["rnn_dim"], sizes["rnn_layers"], 0.2, VDSM_FIXED["nc"])
        enc, dec, id_layers = net.image_enc, net.image_dec, net.id_layers
        trained = [p for name, p in net.named_parameters() if "image" not in name]
        optimiser = torch.optim.Adam(trained, lr=1e-3)
    net.train()

    def identity_terms():
        z_loc, z_scale, id_loc, id_scale = ref.encode_frames(enc, id_layers, videos)
        ids = id_loc + id_scale * torch.randn_like(id_loc)
        kl_id = (_normal_log_prob(ids, id_loc, id_scale) - _normal_log_prob(ids, 0.0, torch.tensor(1.0 / e))).sum()
        return z_loc, z_scale, torch.softmax(TEMP_ID * ids, -1), ANNEAL_ID * kl_id

    def step():
        optimiser.zero_grad()
        z_loc, z_scale, w, kl_id = identity_terms()
        if stage == 1:
            z = z_loc + z_scale * torch.randn_like(z_loc)
            kl_z = (_normal_log_prob(z, z_loc, z_scale) - _normal_log_prob(z, 0.0, torch.tensor(1.0))).sum()
            kl = kl_id + ANNEAL_T * kl_z
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
                    (prior_loc, prior_scale), factor = net.transitions(z_prev, dz), ANNEAL_T
                kl_k = (_normal_log_prob(z_k, loc, scale) - _normal_log_prob(z_k, prior_loc, prior_scale)).sum()
                kl_z = kl_z + factor * kl_k
                zs.append(z_k)
                z_prev = z_k
            z = torch.stack(zs, 1)
            kl = kl_id + ANNEAL_DYNAMICS * kl_dz + kl_z
        probs = dec(z, w)
        nll = -_bernoulli_log_prob(probs, videos).sum()
        loss = nll + kl
        loss.backward()
        optimiser.step()
        return loss.item()

    return _loss_case(step, b)


def _vdsm_seq(sizes: dict[str, int]):
    ref = _reference("vdsm")
    net = ref.VDSMSeq(sizes["z_dim"], sizes["n_e_w"], sizes["dynamics_dim"], sizes["rnn_dim"], sizes["rnn_layers"])
    return ref, net.eval()


def vdsm_swap(sizes: dict[str, int]) -> Case:
    """The swap of every (dynamics i, identity j) pair of test_batch noise clips: test_batch² clips out."""
    ref, net = _vdsm_seq(sizes)
    n, t = sizes["test_batch"], sizes["seq_len"]
    videos = _videos(n, t)

    @torch.no_grad()
    def run():
        z_loc, _, id_loc, _ = ref.encode_frames(net.image_enc, net.id_layers, videos)
        identity = torch.softmax(TEST_TEMP_ID * id_loc, -1)
        futures = net.test_sequence(z_loc.permute(1, 0, 2), t).permute(1, 0, 2)
        return net.image_dec(futures.repeat_interleave(n, 0), identity.repeat(n, 1))  # row i·n + j: dynamics i

    return Case(run=run, clips=n * n, device=torch_device())


def vdsm_generate(sizes: dict[str, int]) -> Case:
    """test_batch clips of seq_len frames from the priors, stepped per clip and frame as `sample_sequence`."""
    _, net = _vdsm_seq(sizes)
    n, t, e, d, z_dim = (sizes[k] for k in ("test_batch", "seq_len", "n_e_w", "dynamics_dim", "z_dim"))

    @torch.no_grad()
    def run():
        identity = torch.softmax(TEST_TEMP_ID * torch.randn(n, e) / e, -1)
        dz = torch.randn(n, d) / d
        zs = torch.zeros(n, t, z_dim)
        for i in range(n):
            z_prev = torch.randn(1, z_dim)
            zs[i, 0] = z_prev[0]
            for k in range(1, t):
                loc, scale = net.transitions(z_prev, dz[i : i + 1])
                z_prev = loc + scale * torch.randn_like(loc)
                zs[i, k] = z_prev[0]
        return net.image_dec(zs, identity)

    return Case(run=run, clips=n, device=torch_device())


# -- DRNet: the training scripts' per-step work, on whichever networks (re-expression or the authors' own) -------


def drnet_stage1_step(nets: dict[str, Any], config: Any) -> Callable[[], float]:
    """`train_scene_discriminator(x)` then `train(x)` of train_drnet.py on four frames of noise."""
    ec, ep, dec, disc = (nets[k] for k in ("netEC", "netEP", "netD", "netC"))
    for net in (ec, ep, dec, disc):
        net.train()
    bs, size, nc = config.batch_size, config.image_width, config.channels
    x = [torch.rand(bs, nc, size, size) for _ in range(4)]
    adam = lambda params: torch.optim.Adam(params, lr=config.lr, betas=(config.beta1, 0.999))
    opt_main = adam(list(ec.parameters()) + list(ep.parameters()) + list(dec.parameters()))
    opt_disc = adam(disc.parameters())
    half = bs // 2
    unet = config.content_model.endswith("unet")

    def step():
        disc.zero_grad()
        h_p1, h_p2 = ep(x[0]).detach(), ep(x[1]).detach()
        h_p2[:half] = h_p2[torch.randperm(half)]
        target = torch.cat([torch.ones(half, 1), torch.zeros(bs - half, 1)])
        F.binary_cross_entropy(disc([h_p1, h_p2]), target).backward()
        opt_disc.step()

        ec.zero_grad(), ep.zero_grad(), dec.zero_grad()
        h_c1 = ec(x[0])
        h_c2 = ec(x[1])[0].detach() if unet else ec(x[1]).detach()
        h_p1, h_p2 = ep(x[2]), ep(x[3]).detach()
        sim = F.mse_loss(h_c1[0] if unet else h_c1, h_c2)
        rec = F.mse_loss(dec([h_c1, h_p1]), x[2])
        sd = F.binary_cross_entropy(disc([h_p1, h_p2]), torch.full((bs, 1), 0.5))
        loss = sim + rec + config.sd_weight * sd
        loss.backward()
        opt_main.step()
        return loss.item()

    return step


def drnet_stage2_step(nets: dict[str, Any], lstm: Any, config: Any) -> Callable[[], float]:
    """`train(x)` of train_lstm.py on n_past + n_future frames of noise, the stage-1 networks in train mode."""
    ec, ep = nets["netEC"], nets["netEP"]
    for net in (ec, ep, nets["netD"], lstm):
        net.train()
    bs, size, nc = config.batch_size, config.image_width, config.channels
    frames = config.n_past + config.n_future
    x = [torch.rand(bs, nc, size, size) for _ in range(frames)]
    optimiser = torch.optim.Adam(lstm.parameters(), lr=config.lr, betas=(config.beta1, 0.999))

    def step():
        lstm.zero_grad()
        lstm.hidden = lstm.init_hidden()
        h_c = ec(x[config.n_past - 1])
        h_c = (h_c[0] if isinstance(h_c, tuple) else h_c).detach()
        h_p = [ep(x[i]).detach() for i in range(frames)]
        mse = 0.0
        for i in range(1, frames):
            pred = lstm(torch.cat([h_p[i - 1], h_c], 1))
            mse = mse + F.mse_loss(pred, h_p[i].view(bs, -1))
        mse.backward()
        optimiser.step()
        return mse.item()

    return step


def drnet_predict_run(nets: dict[str, Any], lstm: Any, config: Any, steps: int, batch: int) -> Callable[[], Any]:
    """`plot_gen` (train_lstm.py) for `steps` predicted frames of `batch` clips, under no_grad, BatchNorm on its
    running averages. The LSTM's (B, pose_dim) prediction goes on as the (B, pose_dim, 1, 1) code EP gives (the
    original's torch accepted the mixed shapes; today's refuses them)."""
    ec, ep, dec = nets["netEC"], nets["netEP"], nets["netD"]
    for net in (ec, ep, dec, lstm):
        net.eval()
    lstm.batch_size = batch
    n_past, size = config.n_past, config.image_width
    x = [torch.rand(batch, config.channels, size, size) for _ in range(n_past)]

    @torch.no_grad()
    def run():
        h_c = ec(x[n_past - 1])
        vec_h_c = h_c[0] if isinstance(h_c, tuple) else h_c
        lstm.hidden = lstm.init_hidden()
        h_p = ep(x[0])
        for i in range(1, n_past + steps):
            if i < n_past:
                lstm(torch.cat([h_p, vec_h_c], 1))
                h_p = ep(x[i])
            else:
                h_p = lstm(torch.cat([h_p, vec_h_c], 1)).view(batch, -1, 1, 1)
                frame = dec([h_c, h_p])
        return frame

    return run


def _drnet_nets(stage: int, sizes: dict[str, int], lstm_batch: int) -> tuple[Any, dict[str, Any], Any]:
    """(config, {netEC, netEP, netD, netC}, pose LSTM whose hidden state is sized for `lstm_batch`)."""
    ref = _reference("drnet")
    config = drnet_config(stage, sizes)
    nets = ref.stage1_networks(config, seed=0, perturb=False)
    return config, nets, ref.lstm_network(config, lstm_batch)


def drnet_step(stage: int, sizes: dict[str, int]) -> Case:
    """The training scripts' step of `stage` on the re-expressed networks (torch's default init, no perturbation)."""
    config, nets, lstm = _drnet_nets(stage, sizes, sizes["batch_size"])
    step = drnet_stage1_step(nets, config) if stage == 1 else drnet_stage2_step(nets, lstm, config)
    return _loss_case(step, config.batch_size)


def drnet_predict(sizes: dict[str, int]) -> Case:
    """`plot_gen` for predict_steps frames of predict_batch clips on the re-expressed networks."""
    config, nets, lstm = _drnet_nets(2, sizes, sizes["predict_batch"])
    run = drnet_predict_run(nets, lstm, config, sizes["predict_steps"], sizes["predict_batch"])
    return Case(run=run, clips=sizes["predict_batch"], device=torch_device())


BUILDERS = side_builders(vdsm_step, vdsm_swap, vdsm_generate, drnet_step, drnet_predict)
