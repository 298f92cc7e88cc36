"""DRNet authors' PyTorch checkpoints -> drnet_jax: numerical parity of every network, errors, the convert CLI.

The torch networks are tests/torch_reference_drnet.py (written from the original, github.com/edenton/drnet-py), seeded with
every bias and BatchNorm running average made non-trivial, saved as the authors' files are (whole pickled
modules, legacy and zip formats), read back through drnet_jax.torch_import (no torch there) and compared at
1e-4 absolute: BatchNorm in train mode (batch statistics, and the updated running averages) and eval mode.
With PARITY_REPORT_DIR set, the largest absolute difference of every compared output goes to
$PARITY_REPORT_DIR/parity_drnet.json.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import torch
import torch_reference_drnet as ref
from conftest import REPO_ROOT, load_config_file

from drnet_jax import DRNet
from drnet_jax.convert_torch import convert, converted_state
from drnet_jax.models import DRNetModules
from drnet_jax.networks import expected_skip_shapes
from drnet_jax.state import Stage1State, load_stage1_variables, restore_state, variables
from drnet_jax.torch_import import DRNET_MODULE_CLASSES, convert_networks, load_torch_checkpoint
from drnet_jax.train import train_and_evaluate
from vdcore.torch_checkpoint import TorchCheckpointError, read_torch_file

ATOL = 1e-4
BATCH = 4  # B != rnn_layers (2), B >= 3: a state read across the batch would show
REPORT: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def _parity_report():
    yield
    directory = os.environ.get("PARITY_REPORT_DIR")
    if directory and REPORT:
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "parity_drnet.json")
        previous = {}
        if os.path.exists(path):
            with open(path) as f:
                previous = json.load(f)
        with open(path, "w") as f:
            json.dump({**previous, **REPORT}, f, indent=1, sort_keys=True)


def _close(name: str, ours, theirs) -> None:
    """Assert |ours - theirs| <= ATOL everywhere; record the largest difference under ``name``."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape, (name, ours.shape, theirs.shape)
    diff = float(np.max(np.abs(ours - theirs)))
    REPORT[name] = diff
    assert diff <= ATOL, f"{name}: largest absolute difference {diff:.3g} > {ATOL}"


def _config(stage: str = "stage1", **overrides):
    """configs/drnet/tiny.py (dcgan_unet content, dcgan pose, 64 px, content 8, pose 3, sd_nf 8, rnn 8x2)."""
    config = load_config_file("configs/drnet/tiny.py", stage)
    config.model_test_interval = 0
    config.update(overrides)
    return config


def _nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.asarray(x, np.float32).transpose(0, 3, 1, 2)))


def _nhwc(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().transpose(0, 2, 3, 1)


def _torch_values(nets: dict) -> dict[str, dict[str, np.ndarray]]:
    return {name: {k: v.detach().numpy().copy() for k, v in net.state_dict().items()} for name, net in nets.items()}


def _save_stage1(nets: dict, config, path, fmt: str) -> str:
    """The authors' stage-1 file: whole modules ('legacy' / 'zip') or their state dicts ('state_dict', zip)."""
    contents = {**nets, "opt": ref.opt_namespace(config)}
    if fmt == "state_dict":
        contents = {**{k: v.state_dict() for k, v in nets.items()}, "opt": ref.opt_namespace(config)}
    ref.save_checkpoint(contents, str(path), legacy=fmt == "legacy")
    return str(path)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _forward(modules: DRNetModules, params, batch_stats, train: bool, frames, h_c, skips, h_p, h_p2):
    """EC and EP of frames; D of (h_c, skips, h_p); C of (h_p, h_p2); and the running averages after the calls."""
    (content, content_skips), s_ec = modules.encode_content(params, batch_stats, frames, train)
    pose, s_ep = modules.encode_pose(params, batch_stats, frames, train)
    decoded, s_d = modules.decode(params, batch_stats, h_c, skips, h_p, train)
    scene = jax.nn.sigmoid(modules.discriminator_logits(params, h_p, h_p2))
    stats = {
        "content_encoder": s_ec["content_encoder"],
        "pose_encoder": s_ep["pose_encoder"],
        "decoder": s_d["decoder"],
    }
    return content, content_skips, pose, decoded, scene, stats


def _inputs(config, rng: np.random.Generator) -> dict:
    """Frames for the encoders; codes, skips and poses for the decoder and the scene discriminator."""
    size, nc = config.image_width, config.channels
    tanh = lambda shape: np.tanh(rng.normal(size=shape)).astype(np.float32)
    return {
        "frames": rng.uniform(0, 1, (BATCH, size, size, nc)).astype(np.float32),
        "h_c": tanh((BATCH, config.content_dim)),
        "skips": tuple(
            rng.normal(size=(BATCH, *shape)).astype(np.float32)
            for shape in expected_skip_shapes(config.content_model, size)
        ),
        "h_p": tanh((BATCH, config.pose_dim)),
        "h_p2": tanh((BATCH, config.pose_dim)),
    }


def _torch_forward(nets: dict, config, x: dict, train: bool) -> dict:
    for net in nets.values():
        net.train(train)
    unet = config.content_model != "dcgan"
    with torch.no_grad():
        content = nets["netEC"](_nchw(x["frames"]))
        content, skips = content if unet else (content, [])
        pose = nets["netEP"](_nchw(x["frames"]))
        h_c = torch.from_numpy(x["h_c"])[:, :, None, None]
        h_p = torch.from_numpy(x["h_p"])[:, :, None, None]
        code = (h_c, [_nchw(s) for s in x["skips"]]) if unet else h_c
        decoded = nets["netD"]([code, h_p])
        scene = nets["netC"]([torch.from_numpy(x["h_p"]), torch.from_numpy(x["h_p2"])])
    return {
        "content": content.reshape(BATCH, -1).numpy(),
        "skips": [_nhwc(s) for s in skips],
        "pose": pose.reshape(BATCH, -1).numpy(),
        "decoded": _nhwc(decoded),
        "scene": scene.numpy(),
    }


def _max_diff(ours, theirs) -> float:
    """Largest absolute difference between two trees of the same structure."""
    assert jax.tree.structure(ours) == jax.tree.structure(theirs)
    pairs = zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True)
    return max(float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))) for a, b in pairs)


# ----------------------------------------------------------------------------------------------------------------------
# Stage 1: every network, BatchNorm in both modes.
# ----------------------------------------------------------------------------------------------------------------------

VARIANTS = [
    pytest.param({"content_model": "dcgan_unet", "pose_model": "dcgan"}, "legacy", id="dcgan_unet-dcgan-64-legacy"),
    pytest.param({"content_model": "vgg_unet", "pose_model": "resnet"}, "zip", id="vgg_unet-resnet-64"),
    pytest.param(
        {"content_model": "dcgan", "pose_model": "dcgan", "normalize": True, "conv_impl": "fast"},
        "state_dict",
        id="dcgan-dcgan-64-normalize-fast",
    ),
    pytest.param(
        {"content_model": "dcgan_unet", "pose_model": "dcgan", "image_width": 128}, "zip", id="dcgan_unet-dcgan-128"
    ),
]


@pytest.mark.parametrize("overrides, fmt", VARIANTS)
def test_stage1_networks_match_torch(overrides, fmt, tmp_path, request):
    config = _config(**overrides)
    nets = ref.stage1_networks(config, seed=3)
    path = _save_stage1(nets, config, tmp_path / "model.pth", fmt)
    model = DRNet.from_checkpoint(path, config)
    assert model.stage == 1
    assert set(model.params) == {"content_encoder", "pose_encoder", "decoder", "scene_discriminator"}
    x = _inputs(config, np.random.default_rng(0))
    variant = request.node.callspec.id
    for train in (False, True):  # eval first: a train-mode call moves torch's running averages
        mode = "train" if train else "eval"
        args = (x["frames"], x["h_c"], x["skips"], x["h_p"], x["h_p2"])
        content, skips, pose, decoded, scene, stats = jax.device_get(
            _forward(model.modules, model.params, model.batch_stats, train, *args)
        )
        theirs = _torch_forward(nets, config, x, train)
        _close(f"{variant}/{mode}/content_encoder", content, theirs["content"])
        assert len(skips) == len(theirs["skips"]) == len(expected_skip_shapes(config.content_model, config.image_width))
        for k, (a, b) in enumerate(zip(skips, theirs["skips"], strict=True), start=1):
            _close(f"{variant}/{mode}/content_encoder_skip_h{k}", a, b)
        _close(f"{variant}/{mode}/pose_encoder", pose, theirs["pose"])
        _close(f"{variant}/{mode}/decoder", decoded, theirs["decoded"])
        _close(f"{variant}/{mode}/scene_discriminator", scene, theirs["scene"])
        if train:  # running averages after one train-mode call (torch folds the unbiased batch variance)
            _, torch_stats = convert_networks(_torch_values(nets), config)
            for network in ("content_encoder", "pose_encoder", "decoder"):
                diff = _max_diff(stats[network], torch_stats[network])
                REPORT[f"{variant}/train/{network}_running_averages"] = diff
                assert diff <= ATOL, (network, diff)


@pytest.mark.parametrize(
    "content_model, pose_model", [("dcgan", "dcgan"), ("dcgan_unet", "resnet"), ("vgg_unet", "resnet")]
)
def test_128px_variants_map_onto_the_jax_parameters(content_model, pose_model):
    """The 128 px networks without a forward pass (ResNet-18 and VGG at 128 px are heavy; the parity tests run
    every network at 64 px and dcgan_unet/dcgan at 128 px): every torch tensor, built on torch's meta device
    (shapes only), lands on a drnet_jax parameter or running average of the expected shape, and none is left."""
    config = _config(content_model=content_model, pose_model=pose_model, image_width=128)
    with torch.device("meta"):
        nets = ref.stage1_modules(config)
    values = {
        name: {k: np.zeros(tuple(v.shape), np.float32) for k, v in net.state_dict().items()}
        for name, net in nets.items()
    }
    params, stats = convert_networks(values, config)
    want_params, want_stats = jax.eval_shape(DRNetModules.from_config(config).init_stage1, jax.random.key(0))
    shapes = lambda tree: jax.tree.map(lambda a: tuple(a.shape), tree)
    assert shapes(params) == shapes(want_params)
    assert shapes(stats) == shapes(want_stats)


# ----------------------------------------------------------------------------------------------------------------------
# Stage 2 and the tiny config's files (shared by the LSTM, error and CLI tests).
# ----------------------------------------------------------------------------------------------------------------------


class TinyFiles:
    """configs/drnet/tiny.py networks in torch (seeded) and the authors' files of both stages."""

    def __init__(self, directory):
        self.config1, self.config2 = _config("stage1"), _config("stage2")
        self.nets = ref.stage1_networks(self.config1, seed=5)
        self.lstm = ref.lstm_network(self.config2, BATCH, seed=6)
        self.stage1 = _save_stage1(self.nets, self.config1, directory / "stage1.pth", "legacy")
        frozen = {k: self.nets[k] for k in ("netEC", "netEP", "netD")}
        self.stage2 = str(directory / "lstm.pth")
        ref.save_checkpoint({"lstm": self.lstm, **frozen, "opt": ref.opt_namespace(self.config2)}, self.stage2, False)
        self.values = _torch_values({**self.nets, "lstm": self.lstm})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> TinyFiles:
    return TinyFiles(tmp_path_factory.mktemp("drnet_torch"))


def test_stage2_file_lstm_matches_torch(tiny):
    model = DRNet.from_checkpoint(tiny.stage2, tiny.config2)
    assert model.stage == 2 and set(model.params) == {"content_encoder", "pose_encoder", "decoder", "lstm"}
    # The frozen stage-1 networks are the file's exactly.
    want_params, want_stats = convert_networks({k: v for k, v in tiny.values.items() if k != "netC"}, tiny.config2)
    assert _max_diff(model.params, want_params) == 0.0 and _max_diff(model.batch_stats, want_stats) == 0.0

    rng = np.random.default_rng(1)
    steps, rollout = 5, 3  # T != B
    poses = np.tanh(rng.normal(size=(BATCH, steps, tiny.config2.pose_dim))).astype(np.float32)
    h_c = np.tanh(rng.normal(size=(BATCH, tiny.config2.content_dim))).astype(np.float32)
    modules = model.modules

    @jax.jit
    def ours(params, poses, h_c):
        forced = modules.lstm_teacher_forced(params, poses, h_c)
        _, generated = modules.lstm_rollout(params, modules.lstm_condition(params, poses, h_c), h_c, rollout)
        return forced, generated

    forced, generated = jax.device_get(ours(model.params, poses, h_c))
    lstm, t_poses, t_h_c = tiny.lstm, torch.from_numpy(poses), torch.from_numpy(h_c)
    with torch.no_grad():
        lstm.hidden = lstm.init_hidden(BATCH)
        t_forced = torch.stack([lstm(torch.cat([t_poses[:, t], t_h_c], 1)) for t in range(steps)], 1)
        lstm.hidden = lstm.init_hidden(BATCH)  # condition on poses 0..T-2, then feed the predictions back
        for t in range(steps - 1):
            lstm(torch.cat([t_poses[:, t], t_h_c], 1))
        pose, t_generated = t_poses[:, -1], []
        for _ in range(rollout):
            pose = lstm(torch.cat([pose, t_h_c], 1))
            t_generated.append(pose)
    _close("lstm/teacher_forced", forced, t_forced.numpy())
    _close("lstm/rollout", generated, torch.stack(t_generated, 1).numpy())


def test_authors_lstm_only_stage2_file_takes_the_networks_of_its_stage1_file(tiny, tmp_path):
    """train_lstm.py saves {'lstm', 'opt'} at <model_path>/lstm/<name>/model.pth; its EC, EP and D are those of
    <model_path>/model.pth (opt.model_path), the stage-1 file it was trained from."""
    run = tmp_path / "mnist_run"
    run.mkdir()
    stage1 = _save_stage1(tiny.nets, tiny.config1, run / "model.pth", "legacy")
    lstm_dir = run / "lstm" / "rnn_size=8-rnn_layers=2"
    lstm_dir.mkdir(parents=True)
    lstm_file = str(lstm_dir / "model.pth")
    opt = ref.opt_namespace(tiny.config2, model_path=str(run))
    ref.save_checkpoint({"lstm": tiny.lstm, "opt": opt}, lstm_file, False)
    whole = DRNet.from_checkpoint(tiny.stage2, tiny.config2)
    for found in (
        DRNet.from_checkpoint(lstm_file, tiny.config2),  # via opt.model_path
        DRNet.from_checkpoint(lstm_file, tiny.config2, stage1_checkpoint=stage1),
    ):
        assert found.stage == 2
        assert _max_diff(found.params, whole.params) == 0.0 and _max_diff(found.batch_stats, whole.batch_stats) == 0.0

    moved = run.parent / "moved_run"
    run.rename(moved)  # opt.model_path is stale now; the train_lstm.py layout still finds ../../model.pth
    moved_lstm = str(moved / "lstm" / "rnn_size=8-rnn_layers=2" / "model.pth")
    assert _max_diff(DRNet.from_checkpoint(moved_lstm, tiny.config2).params, whole.params) == 0.0

    alone = tmp_path / "alone" / "model.pth"
    alone.parent.mkdir()
    ref.save_checkpoint({"lstm": tiny.lstm, "opt": opt}, str(alone), False)
    with pytest.raises(
        TorchCheckpointError, match=r"alone/model\.pth: an authors' stage-2 file .* pass that file as stage1_checkpoint"
    ):
        DRNet.from_checkpoint(alone, tiny.config2)
    with pytest.raises(TorchCheckpointError, match=r"lstm\.pth: stage1_checkpoint=.* holds its own netEC"):
        DRNet.from_checkpoint(tiny.stage2, tiny.config2, stage1_checkpoint=str(moved / "model.pth"))
    wrong = tiny.config2.copy_and_resolve_references()
    wrong.content_dim = 9
    with pytest.raises(TorchCheckpointError, match=r"with the networks of .*moved_run/model\.pth.*content_dim=9"):
        DRNet.from_checkpoint(str(alone), wrong, stage1_checkpoint=str(moved / "model.pth"))


# ----------------------------------------------------------------------------------------------------------------------
# Errors: one message naming the file and every offending key; never a partly loaded model.
# ----------------------------------------------------------------------------------------------------------------------


def test_stage_mismatch_and_missing_config(tiny):
    with pytest.raises(TorchCheckpointError, match=r"stage1\.pth: a stage-1 checkpoint .* asks for stage 2"):
        DRNet.from_checkpoint(tiny.stage1, tiny.config2)
    with pytest.raises(TorchCheckpointError, match=r"lstm\.pth: a stage-2 checkpoint .* asks for stage 1"):
        DRNet.from_checkpoint(tiny.stage2, tiny.config1)
    with pytest.raises(ValueError, match=r"stage1\.pth: loading a torch checkpoint needs the config"):
        DRNet.from_checkpoint(tiny.stage1)
    with pytest.raises(ValueError, match="step=3 does not apply"):
        DRNet.from_checkpoint(tiny.stage1, tiny.config1, step=3)
    both = _config("both")
    assert DRNet.from_checkpoint(tiny.stage1, both).stage == 1  # a "both" config takes the file's stage
    assert DRNet.from_checkpoint(tiny.stage2, both).config.stage == 2


def test_wrong_content_model_lists_every_key_with_shapes(tiny):
    with pytest.raises(TorchCheckpointError) as info:
        load_torch_checkpoint(tiny.stage1, _config(content_model="vgg_unet"))
    message = str(info.value)
    assert message.startswith(f"{tiny.stage1}: does not match the stage-1 config (content_model='vgg_unet'")
    assert "opt.content_model = 'dcgan_unet', the config has content_model = 'vgg_unet'" in message
    assert "netEC (a models.dcgan_unet_64.encoder):" in message
    assert "netEC: missing c1.0.main.0.weight (expected shape (64, 3, 3, 3))" in message
    assert "netEC: unexpected c1.main.0.weight (64, 3, 4, 4)" in message
    assert "netD (a models.dcgan_unet_64.decoder):" in message
    assert "netD: missing upc5.1.weight (expected shape (64, 3, 3, 3))" in message
    assert "netEP" not in message and "netC" not in message  # those fit


def test_wrong_dims_list_expected_and_found_shapes(tiny):
    with pytest.raises(TorchCheckpointError) as info:
        load_torch_checkpoint(tiny.stage1, _config(pose_dim=4))
    message = str(info.value)
    for line in (
        "opt.pose_dim = 3, the config has pose_dim = 4",
        "netEP.main.4.weight: expected shape (4, 512, 4, 4), found (3, 512, 4, 4)",
        "netEP.main.5.running_var: expected shape (4,), found (3,)",
        "netD.upc1.0.weight: expected shape (12, 512, 4, 4), found (11, 512, 4, 4)",
        "netC.main.0.weight: expected shape (8, 8), found (8, 6)",
    ):
        assert line in message, line
    assert "netEC" not in message
    assert "num_batches_tracked" not in message  # read and ignored where the BatchNorm layer is expected


def test_state_dict_file_missing_and_extra_keys_and_entries(tiny, tmp_path):
    contents = {k: net.state_dict() for k, net in tiny.nets.items()}
    del contents["netEC"]["c1.main.1.running_var"]
    contents["netD"]["upc9.0.weight"] = torch.zeros(2)
    del contents["netEP"]
    contents["optimizer"] = {"lr": 1.0}
    path = str(tmp_path / "broken.pth")
    ref.save_checkpoint(contents, path, legacy=False)
    with pytest.raises(TorchCheckpointError) as info:
        DRNet.from_checkpoint(path, tiny.config1)
    message = str(info.value)
    assert message.startswith(f"{path}: does not match")
    for line in (
        "missing 'netEP'",
        "unexpected entry 'optimizer'",
        "netEC: missing c1.main.1.running_var (expected shape (64,))",
        "netD: unexpected upc9.0.weight (2,)",
    ):
        assert line in message, line


def test_file_without_scene_discriminator(tiny, tmp_path):
    """drnet-py's stage-1 files may hold only netEC, netEP, netD: the API loads them without C, and a converted
    run gets a freshly initialised C (the optimiser state is fresh anyway)."""
    path = str(tmp_path / "no_netc.pth")
    frozen = {k: tiny.nets[k] for k in ("netEC", "netEP", "netD")}
    ref.save_checkpoint({**frozen, "opt": ref.opt_namespace(tiny.config1)}, path, legacy=False)
    model = DRNet.from_checkpoint(path, tiny.config1)
    assert set(model.params) == {"content_encoder", "pose_encoder", "decoder"}
    loaded = load_torch_checkpoint(path, tiny.config1)
    state = converted_state(loaded.config, DRNetModules.from_config(loaded.config), loaded, step=4)
    assert int(state.step) == int(state.disc.step) == 4
    assert state.disc.params["scene_discriminator"]["fc1"]["kernel"].shape == (2 * tiny.config1.pose_dim, 8)
    assert _max_diff(state.main.params, loaded.params) == 0.0


def test_foreign_classes_and_other_files_are_refused(tiny, tmp_path):
    netC = ref.SceneDiscriminator(3, 8)
    netC.main.append(torch.nn.Dropout())
    path = str(tmp_path / "dropout.pth")
    ref.save_checkpoint({**tiny.nets, "netC": netC}, path, legacy=True)
    with pytest.raises(
        TorchCheckpointError, match=r"dropout\.pth: refuses to load 'torch\.nn\.modules\.dropout\.Dropout'"
    ):
        DRNet.from_checkpoint(path, tiny.config1)
    other = str(tmp_path / "other.pt")
    torch.save({"model": torch.zeros(2)}, other)
    with pytest.raises(TorchCheckpointError, match=r"other\.pt: not a DRNet checkpoint.*found \['model'\]"):
        DRNet.from_checkpoint(other, tiny.config1)
    # The allow-list admits the authors' model files and the torch.nn layers they use, nothing else.
    assert "models.dcgan_unet_64.*" in DRNET_MODULE_CLASSES
    assert not any(name.startswith(("builtins", "os", "torch.nn.*")) for name in DRNET_MODULE_CLASSES)
    assert read_torch_file(tiny.stage1, module_classes=DRNET_MODULE_CLASSES)["opt"].content_model == "dcgan_unet"


# ----------------------------------------------------------------------------------------------------------------------
# The convert CLI: a run that training resumes from, and that stage 2 starts from.
# ----------------------------------------------------------------------------------------------------------------------


def test_convert_cli_resume_and_stage2_start(tiny, tmp_path, tiny_moving_mnist):
    workdir = tmp_path / "converted1"
    command = [
        sys.executable,
        "-m",
        "drnet_jax.convert_torch",
        "--config",
        f"{REPO_ROOT / 'configs/drnet/tiny.py'}:stage1",
        "--torch_checkpoint",
        tiny.stage1,
        "--workdir",
        str(workdir),
        "--epoch",
        "1",
        "--config.data_dir",
        tiny_moving_mnist,
    ]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["step"] == 2 and summary["stage"] == 1 and summary["optimizer_state"] == "fresh"

    config1 = _config("stage1", data_dir=tiny_moving_mnist)
    modules = DRNetModules.from_config(config1)
    state, meta = restore_state(config1, modules, workdir)
    assert isinstance(state, Stage1State) and meta["step"] == 2 and meta["epoch"] == 1
    assert int(state.main.step) == int(state.disc.step) == 2 and int(state.main.opt_state[0].count) == 0
    params, stats = variables(state)
    stage1_values = {k: v for k, v in tiny.values.items() if k != "lstm"}
    want_params, want_stats = convert_networks(stage1_values, config1)  # from torch's own state_dict()
    assert _max_diff(params, want_params) == 0.0 and _max_diff(stats, want_stats) == 0.0
    kernel = tiny.values["netEC"]["c1.main.0.weight"].transpose(2, 3, 1, 0)  # one layout spelled out
    np.testing.assert_array_equal(params["content_encoder"]["c1"]["conv"]["kernel"], kernel)

    resumed = train_and_evaluate(config1, str(workdir), stop_after_steps=1)
    assert resumed["start_step"] == 2 and resumed["final_step"] == 3 and resumed["skipped_steps"] == 0

    # Stage 2 starts from the converted stage-1 run (config.stage1_workdir): its frozen networks are the file's.
    config2 = _config("stage2", data_dir=tiny_moving_mnist, stage1_workdir=str(workdir))
    frozen_params, frozen_stats = load_stage1_variables(config2)
    assert _max_diff(frozen_params, {k: want_params[k] for k in frozen_params}) == 0.0
    assert _max_diff(frozen_stats, want_stats) == 0.0

    # A stage-2 file converts into a stage-2 run (restored into the very state training resumes from; training a
    # step of it is what test_drnet_train checks for every resume), and never into an existing run.
    workdir2 = tmp_path / "converted2"
    config2 = _config("stage2", data_dir=tiny_moving_mnist)
    assert convert(config2, tiny.stage2, str(workdir2), epoch=1)["step"] == 2
    state2, meta2 = restore_state(config2, modules, workdir2)
    assert meta2["stage"] == 2 and int(state2.step) == 2
    assert _max_diff(state2.params["lstm"], convert_networks(tiny.values, config2)[0]["lstm"]) == 0.0
    assert _max_diff(state2.frozen["params"], {k: want_params[k] for k in state2.frozen["params"]}) == 0.0
    with pytest.raises(ValueError, match="already holds checkpoints"):
        convert(config1, tiny.stage1, str(workdir))


def test_each_model_names_the_other_models_torch_files(tiny, tmp_path):
    from vdsm_jax import VDSM

    vdsm_config = load_config_file("configs/vdsm/tiny.py", "stage1")
    with pytest.raises(TorchCheckpointError, match=r"not a VDSM checkpoint: it pickles whole torch modules.*DRNet"):
        VDSM.from_checkpoint(tiny.stage1, vdsm_config)
    vdsm_file = tmp_path / "200_VDSM_EncDec.pth"
    torch.save({"epoch": 200, "model": {"enc.w": torch.zeros(2)}, "optimizer": {}}, vdsm_file)
    with pytest.raises(TorchCheckpointError, match=r"original VDSM file.*vdsm_jax.VDSM.from_checkpoint"):
        DRNet.from_checkpoint(vdsm_file, tiny.config1)
