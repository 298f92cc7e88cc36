"""The real originals' side of every benchmark case: the user's checkouts, their own modules imported as they are.

VDSM (Vowels et al., CVPR 2021; github.com/matthewvowels1/DisentanglingSequences): the networks wired as its
`Trainer_Tester` wires them (benchmarks/originals.py: `build_vdsm`), and per call what its train_test.py does:
  vdsm_stage1    `Trace_ELBO().differentiable_loss(VDSM_EncDec.model, VDSM_EncDec.guide, ...)`, backward, Adam.
  vdsm_stage2    `TraceEnum_ELBO(max_plate_nesting=2).differentiable_loss(VDSM_Seq.model, VDSM_Seq.guide, ...)`,
                 backward, Adam over the parameters whose names lack 'image' (the trainer's selection).
  vdsm_swap      `extract_id_etc` + `swap_id_generate_sequence` without the pictures: `VDSM_Seq.test_sequence`, then
                 `image_dec` on every (dynamics i, identity j) pair, one call per pair.
  vdsm_generate  `VDSM_Seq.sample_sequence` itself.
DRNet (Denton & Birodkar, NeurIPS 2017; github.com/edenton/drnet-py): the authors' `models.*` networks
(`build_drnet`) through the training scripts' per-step functions, which are module-level script code there and are
restated once in benchmarks/torch_cases.py for both torch sides.

Trainer code that is not importable (train_test.py needs torchvision, tensorboard and the data sets at import;
drnet-py's scripts parse their flags and load data at import) is restated as the few lines above; the networks,
the Pyro model and guide and `test_sequence` / `sample_sequence` are the originals'. The batch is uniform noise,
as on the other sides. Run inside `benchmarks.originals.cpu_shims()` (benchmarks/worker.py does).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from benchmarks.cases import Case, side_builders
from benchmarks.common import torch_device
from benchmarks.issue_configs import VDSM_FIXED, drnet_config
from benchmarks.originals import build_drnet, build_vdsm, import_drnet_original, import_vdsm_original
from benchmarks.torch_cases import (
    ANNEAL_DYNAMICS,
    ANNEAL_ID,
    ANNEAL_T,
    TEMP_ID,
    TEST_TEMP_ID,
    drnet_predict_run,
    drnet_stage1_step,
    drnet_stage2_step,
)


def _vdsm(path: str | os.PathLike, sizes: dict[str, int]) -> tuple[Any, int, int]:
    """(the original's networks wired as its trainer wires them, channels, frame size)."""
    nets = build_vdsm(
        import_vdsm_original(path),
        sizes["z_dim"],
        sizes["n_e_w"],
        sizes["dynamics_dim"],
        sizes["rnn_dim"],
        sizes["rnn_layers"],
        sizes["seq_len"],
        temp_min=TEST_TEMP_ID,
    )
    nc, size = VDSM_FIXED["nc"], VDSM_FIXED["image_size"]
    return nets, nc, size


def vdsm_step(stage: int, sizes: dict[str, int], path: str | os.PathLike) -> Case:
    """The original trainer's step of `stage` (module docstring) on a (bs, seq_len, 3, 64, 64) noise batch."""
    import pyro
    from pyro.infer import Trace_ELBO, TraceEnum_ELBO

    pyro.clear_param_store()
    # Pyro 1.4, the original's, did not validate distributions' arguments by default; Pyro >= 1.5 does, and refuses
    # the stage-2 model's Bernoulli likelihood of continuous pixels (stage 1 passes validate_args=False itself).
    pyro.enable_validation(False)
    nets, nc, size = _vdsm(path, sizes)
    x = torch.rand(sizes["bs"], sizes["seq_len"], nc, size, size)
    if stage == 1:
        nets.encdec.eval()  # the trainer's modes while it trains VDSM_EncDec
        nets.seq.eval()
        loss_fn = Trace_ELBO().differentiable_loss
        optimiser = torch.optim.Adam([{"params": nets.encdec.parameters(), "lr": 1e-3}])

        def loss():
            return loss_fn(
                model=nets.encdec.model,
                guide=nets.encdec.guide,
                x=x,
                temp=torch.tensor(TEMP_ID),
                anneal_id=ANNEAL_ID,
                anneal_t=ANNEAL_T,
            )

    else:
        nets.encdec.train()
        nets.seq.train()
        loss_fn = TraceEnum_ELBO(max_plate_nesting=2).differentiable_loss
        trained = [param for name, param in nets.seq.named_parameters() if "image" not in name]
        optimiser = torch.optim.Adam([{"params": trained, "lr": 1e-3}])

        def loss():
            return loss_fn(
                model=nets.seq.model,
                guide=nets.seq.guide,
                anneal_t=torch.tensor(ANNEAL_T),
                temp_id=torch.tensor(TEMP_ID),
                x=x,
                anneal_dynamics=ANNEAL_DYNAMICS,
                anneal_id=ANNEAL_ID,
            )

    def step():
        value = loss()
        value.backward()
        optimiser.step()
        optimiser.zero_grad()
        return value.item()

    return Case(run=step, clips=sizes["bs"], device=torch_device(), summary=lambda out: {"loss": float(out)})


def vdsm_swap(sizes: dict[str, int], path: str | os.PathLike) -> Case:
    """`swap_id_generate_sequence`'s computation over test_batch noise clips: test_batch² decoded clips."""
    nets, nc, size = _vdsm(path, sizes)
    seq = nets.seq.eval()
    n, t = sizes["test_batch"], sizes["seq_len"]
    videos = torch.rand(n, t, nc, size, size)

    @torch.no_grad()
    def run():
        loc, _, ident, ident_scale = seq.image_enc.forward(videos.view(n * t, nc, size, size))
        ident, _ = seq.id_layers(ident, ident_scale)
        ident = torch.softmax(TEST_TEMP_ID * ident.view(n, t, -1).mean(1), -1)
        futures = seq.test_sequence(loc.view(n, t, -1).permute(1, 0, 2), t).permute(1, 0, 2)
        return torch.stack([seq.image_dec.forward(futures[i], ident[j][:, None]) for i in range(n) for j in range(n)])

    return Case(run=run, clips=n * n, device=torch_device())


def vdsm_generate(sizes: dict[str, int], path: str | os.PathLike) -> Case:
    """`VDSM_Seq.sample_sequence` for test_batch clips of seq_len frames."""
    nets, nc, size = _vdsm(path, sizes)
    seq = nets.seq.eval()
    videos = torch.rand(sizes["test_batch"], sizes["seq_len"], nc, size, size)
    run = torch.no_grad()(lambda: seq.sample_sequence(videos))
    return Case(run=run, clips=sizes["test_batch"], device=torch_device())


def _drnet(stage: int, sizes: dict[str, int], path: str | os.PathLike, lstm_batch: int) -> tuple[Any, dict]:
    config = drnet_config(stage, sizes)
    nets = build_drnet(
        import_drnet_original(path),
        config.content_model,
        config.pose_model,
        config.content_dim,
        config.pose_dim,
        config.channels,
        image_width=config.image_width,
        normalize=bool(config.normalize),
        sd_nf=config.sd_nf,
        rnn_size=config.rnn_size,
        rnn_layers=config.rnn_layers,
        batch_size=lstm_batch,
    )
    return config, nets


def drnet_step(stage: int, sizes: dict[str, int], path: str | os.PathLike) -> Case:
    """The training scripts' step of `stage` on the authors' networks (torch's default init)."""
    config, nets = _drnet(stage, sizes, path, sizes["batch_size"])
    step = drnet_stage1_step(nets, config) if stage == 1 else drnet_stage2_step(nets, nets["lstm"], config)
    return Case(run=step, clips=config.batch_size, device=torch_device(), summary=lambda out: {"loss": float(out)})


def drnet_predict(sizes: dict[str, int], path: str | os.PathLike) -> Case:
    """`plot_gen` for predict_steps frames of predict_batch clips on the authors' networks."""
    config, nets = _drnet(2, sizes, path, sizes["predict_batch"])
    run = drnet_predict_run(nets, nets["lstm"], config, sizes["predict_steps"], sizes["predict_batch"])
    return Case(run=run, clips=sizes["predict_batch"], device=torch_device())


BUILDERS = side_builders(vdsm_step, vdsm_swap, vdsm_generate, drnet_step, drnet_predict)
