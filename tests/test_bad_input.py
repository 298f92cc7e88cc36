"""Bad input at every public entry point, in one place (issue 16 item 6).

Each case gives one entry point a bad input and asserts how it ends (the exception type, or the exit status of a
command with no traceback) and that the message names the file, field or key and what was expected. Grouped by
entry point: data builders, training commands, converters, evaluation, judge, Python APIs; a handful of real
command lines run concurrently at the end.

The classes of issue 16's "Why": unknown override (TRAINING_CONFIG_CASES, and the real command line in
tests/test_cli_overrides.py), damaged newest checkpoint (CHECKPOINT tests here; the training resume in
tests/test_damaged_checkpoints.py), the other model's checkpoint file (CONVERTER_CASES, API and evaluation cases),
uint8 / wrong-range pixels (API_CASES; uint8 read as 0..255 in tests/test_vdsm_api.py). SIGTERM / SIGINT is not bad
input but an event: tests/test_preemption.py sends it to a training run and to a judge (they checkpoint and exit 0);
it takes minutes, so it is not repeated here.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO_ROOT, load_config_file

from data_prep import build as build_cli
from drnet_jax import DRNet
from drnet_jax import config_defaults as drnet_defaults
from drnet_jax.models import DRNetModules
from drnet_jax.state import META_FORMAT as DRNET_FORMAT
from vdcore import cli
from vdcore.checkpoint import (
    CHECKPOINT_SUBDIR,
    Checkpointer,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    DamagedCheckpointError,
    RunExistsError,
)
from vdcore.torch_checkpoint import TorchCheckpointError
from vdeval import preview as preview_cli
from vdsm_jax import VDSM
from vdsm_jax import config_defaults as vdsm_defaults
from vdsm_jax.models import VDSMModules
from vdsm_jax.state import META_FORMAT as VDSM_FORMAT

Case = Callable[[pathlib.Path], object]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """Bad and good files and folders the cases name: made once, no training (fake runs hold a tiny state)."""
    import torch
    import torch_reference_drnet as drnet_ref
    import torch_reference_vdsm as vdsm_ref

    root = tmp_path_factory.mktemp("bad_input")
    paths = {name: str(root / name) for name in ("empty", "a_file", "missing")}
    paths.update(text_pth=str(root / "text.pth"), tensor_model=str(root / "tensor_model.pt"))
    os.mkdir(paths["empty"])
    pathlib.Path(paths["a_file"]).write_text("a file, not a folder\n")
    pathlib.Path(paths["text_pth"]).write_text("not a checkpoint\n")
    torch.save({"model": torch.zeros(2)}, paths["tensor_model"])
    c = load_config_file("configs/vdsm/tiny.py", "stage1")
    paths["vdsm_pth"] = str(root / "2_VDSM_EncDec.pth")  # an original VDSM file of the tiny config's shapes
    net = vdsm_ref.VDSMEncDec(c.z_dim, c.n_e_w, c.nc)
    torch.save({"epoch": 2, "model": net.state_dict(), "optimizer": {}}, paths["vdsm_pth"])
    paths["drnet_pth"] = str(root / "model.pth")  # a DRNet authors' file: whole pickled modules
    drnet_ref.save_checkpoint({"netC": drnet_ref.SceneDiscriminator(3, 8)}, paths["drnet_pth"], legacy=True)
    for name, meta_format, stage in (("vdsm_run", VDSM_FORMAT, 1), ("vdsm_stage2_run", VDSM_FORMAT, 2)):
        paths[name] = _fake_run(root / name, meta_format, stage)
    paths["drnet_run"] = _fake_run(root / "drnet_run", DRNET_FORMAT, 1)
    manual = root / "mnist_manual"
    manual.mkdir()
    (manual / "mnist.npz").write_text("garbage, not an npz\n")
    paths["mnist_manual"] = str(manual)
    mug = root / "mug_manual"
    mug.mkdir()
    np.savez(mug / "labels.npz", np.array([[0, 1], [1, 2], [2, 3]]))
    (mug / "MUG_0-255_OF_112x112_color.npz").write_bytes(b"\x80\x04garbage: a pickle would run code here")
    paths["mug_manual"] = str(mug)
    return paths


def _fake_run(workdir: pathlib.Path, meta_format: str, stage: int, steps: tuple[int, ...] = (1,)) -> str:
    """A run folder whose checkpoints carry `meta_format` and `stage` (a tiny state: enough for the checks that
    read the meta, which come before any state is restored)."""
    checkpoints = Checkpointer(workdir / CHECKPOINT_SUBDIR)
    for step in steps:
        checkpoints.save(step, {"w": jnp.zeros(2)}, {"format": meta_format, "stage": stage, "step": step})
    checkpoints.close()
    return str(workdir)


def _run_main(main: Callable[[list[str]], int], argv: list[str], capsys) -> tuple[int, str]:
    """(exit status, stderr) of an argparse command's main, run in this process."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code, capsys.readouterr().err


def _assert_names(message: str, expected: list[str]) -> None:
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


# ----------------------------------------------------------------------------------------------------------------------
# Data builders: python -m data_prep.build / python -m vdeval.preview (argparse mains, in-process).
# ----------------------------------------------------------------------------------------------------------------------

BUILD_CASES = {
    "unknown dataset": (lambda f, data: ["nope", "--data_dir", data], 2, ["invalid choice: 'nope'", "moving_mnist"]),
    "unknown --config": (
        lambda f, data: ["moving_mnist", "--data_dir", data, "--config", "nope"],
        1,
        ["unknown config 'nope' for dataset 'moving_mnist'; known configs:", "'smoke'"],
    ),
    "data_dir is a file": (
        lambda f, data: ["moving_mnist", "--data_dir", f["a_file"], "--config", "smoke"],
        1,
        ["a_file: data_dir is a file; expected the folder of built datasets"],
    ),
    "manual files not given": (
        lambda f, data: ["mug_fed", "--data_dir", data],
        1,
        ["Dataset 'mug_fed' needs manually downloaded files; no manual_dir was given", "- labels.npz"],
    ),
    "manual files not in manual_dir": (
        lambda f, data: ["kth", "--data_dir", data, "--manual_dir", f["empty"]],
        1,
        ["Dataset 'kth' needs manually downloaded files; they are not in manual_dir=", "- 00sequences.txt"],
    ),
    "manual_dir is not a folder": (
        lambda f, data: ["mug_fed", "--data_dir", data, "--manual_dir", f["missing"]],
        1,
        ["Dataset 'mug_fed' needs manually downloaded files; manual_dir=", "missing is not a folder", "- labels.npz"],
    ),
    "optional manual_dir that is not a folder (was silently unused)": (
        lambda f, data: ["moving_mnist", "--config", "smoke", "--data_dir", data, "--manual_dir", f["missing"]],
        1,
        ["Dataset 'moving_mnist' needs manually downloaded files; manual_dir=", "missing is not a folder"],
    ),
    "LPC sheets not in lpc_dir": (
        lambda f, data: ["sprites", "--data_dir", data, "--lpc_dir", f["empty"]],
        1,
        ["Dataset 'sprites' needs manually downloaded files; they are not in manual_dir=", "body/male/light.png"],
    ),
    "--lpc_dir for another dataset": (
        lambda f, data: ["moving_mnist", "--data_dir", data, "--lpc_dir", f["empty"]],
        2,
        ["--lpc_dir only applies to the sprites dataset"],
    ),
    "garbage mnist.npz": (
        lambda f, data: ["moving_mnist", "--config", "smoke", "--data_dir", data, "--manual_dir", f["mnist_manual"]],
        1,
        ["mnist.npz: not a readable .npz of numeric arrays: not a zip archive, as every .npz file is"],
    ),
    "garbage MUG images npz (never unpickled)": (
        lambda f, data: ["mug_fed", "--data_dir", data, "--manual_dir", f["mug_manual"]],
        1,
        ["MUG_0-255_OF_112x112_color.npz: cannot read 'arr_0' (object array", "not a zip archive"],
    ),
}


@pytest.mark.parametrize("case", sorted(BUILD_CASES))
def test_data_prep_build(case, files, tmp_path, capsys):
    argv, status, expected = BUILD_CASES[case]
    code, err = _run_main(build_cli.main, argv(files, str(tmp_path / "data")), capsys)
    assert code == status and "Traceback" not in err
    assert "python -m data_prep.build: error: " in err  # then the message (with instructions, for manual files)
    _assert_names(err, expected)


PREVIEW_CASES = {
    "dataset not built": (
        lambda f, data: ["moving_mnist", "--config", "smoke", "--data_dir", f["missing"], "--out", "x.png"],
        1,
        ["dataset 'moving_mnist' (config 'smoke') is not built in", "python -m data_prep.build moving_mnist --config"],
    ),
    "unknown split": (
        lambda f, data: ["moving_mnist", "--config", "smoke", "--data_dir", data, "--split", "nope", "--out", "x.png"],
        1,
        ["moving_mnist/smoke/1.0.0: no split 'nope' in dataset 'moving_mnist'; splits: ['test', 'train']"],
    ),
    "zero rows": (
        lambda f, data: ["moving_mnist", "--data_dir", data, "--num", "0", "--out", "x.png"],
        2,
        ["argument --num: must be an integer >= 1, got '0'"],
    ),
}


@pytest.mark.parametrize("case", sorted(PREVIEW_CASES))
def test_preview(case, files, tiny_moving_mnist, capsys):
    argv, status, expected = PREVIEW_CASES[case]
    code, err = _run_main(preview_cli.main, argv(files, tiny_moving_mnist), capsys)
    assert code == status and "Traceback" not in err
    _assert_names(err, expected)


# ----------------------------------------------------------------------------------------------------------------------
# Training commands: python -m vdsm_jax.main / drnet_jax.main (vdcore.cli), checked before anything is built.
# ----------------------------------------------------------------------------------------------------------------------


def _tiny(model: str, stage: str = "both", **fields):
    config = load_config_file(f"configs/{model}/tiny.py", stage)
    config.update(fields)
    return config


TRAINING_CONFIG_CASES = {
    "vdsm: negative batch": ("vdsm", {"bs": -4}, ["config.bs must be an integer >= 1, got -4"]),
    "vdsm: schedule fraction <= 0": ("vdsm", {"temp_id_frac": 0.0}, ["config.temp_id_frac must be > 0, got 0.0"]),
    "vdsm: stage-2 value of a 'both' run": (
        "vdsm",
        {"stage2.epochs": 0},
        ["config.epochs must be an integer >= 1, got 0 (stage 2: config.stage2 applied)"],
    ),
    "vdsm: lr drop past the last epoch": (
        "vdsm",
        {"lr_drop_epochs": (1, 9)},
        ["config.lr_drop_epochs must be increasing whole epochs in [1, epochs=6), got (1, 9)"],
    ),
    "vdsm: stage-2 lr drop past its last epoch": (
        "vdsm",
        {"stage2.lr_drop_epochs": (2, 9)},
        ["config.lr_drop_epochs must be increasing whole epochs in [1, epochs=6), got (2, 9) (stage 2: config.stage2"],
    ),
    "vdsm: lr drop factor above 1": ("vdsm", {"lr_drop_epochs": (1,), "lr_drop_factor": 3.0}, ["lr_drop_factor must"]),
    "drnet: batch the discriminator cannot halve": ("drnet", {"batch_size": 1}, ["config.batch_size must be >= 2"]),
    "drnet: unknown optimizer": ("drnet", {"optimizer": "adamw"}, ["config.optimizer must be one of", "'adamw'"]),
    "drnet: cached pose codes with batch statistics": (
        "drnet",
        {"pose_codes": "cached"},
        ["config.pose_codes='cached'", "set config.frozen_bn_train_mode=False too", "(stage 2: config.stage2 applied)"],
    ),
    "drnet: unknown pose codes": ("drnet", {"pose_codes": "stored"}, ["config.pose_codes must be one of", "'stored'"]),
    "unknown dataset": ("vdsm", {"dataset": "nope"}, ["unknown dataset 'nope'; known datasets:", "'moving_mnist'"]),
    "unknown dataset config": ("drnet", {"dataset_config": "nope"}, ["unknown config 'nope' for dataset"]),
}


def _check_run_message(config, workdir: str, model: str, capsys) -> str:
    """The message cli.check_run ends the command with: written by `fail` (exit status 1) or an input error's."""
    check = {"vdsm": vdsm_defaults, "drnet": drnet_defaults}[model].check_config
    with pytest.raises((SystemExit, *cli.INPUT_ERRORS)) as error:
        cli.check_run(config, workdir, check)
    if isinstance(error.value, SystemExit):
        assert error.value.code == 1
        return capsys.readouterr().err
    return str(error.value)


@pytest.mark.parametrize("case", sorted(TRAINING_CONFIG_CASES))
def test_training_config_values_are_refused_before_anything_is_built(case, tmp_path, capsys):
    model, fields, expected = TRAINING_CONFIG_CASES[case]
    config = _tiny(model, data_dir=str(tmp_path / "data"))
    for name, value in fields.items():
        block, _, field = name.rpartition(".")
        (config[block] if block else config)[field] = value
    _assert_names(_check_run_message(config, str(tmp_path / "run"), model, capsys), expected)
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()


TRAINING_PATH_CASES = {
    "workdir is a file": (
        "vdsm",
        "both",
        {},
        "a_file",
        ["--workdir", "a_file is a file; expected a folder for the run"],
    ),
    "data_dir is a file": (
        "drnet",
        "both",
        {"data_dir": "a_file"},
        "empty",
        ["a_file: data_dir is a file; expected the folder of built datasets"],
    ),
    "stage 2 without stage1_workdir": (
        "vdsm",
        "stage2",
        {},
        "empty",
        ["config.stage1_workdir is empty; stage 2 starts from a trained stage-1 run"],
    ),
    "stage1_workdir without checkpoints": (
        "vdsm",
        "stage2",
        {"stage1_workdir": "empty"},
        "missing",
        ["config.stage1_workdir: no checkpoint in", "expected a trained stage-1 run"],
    ),
    "stage1_workdir that does not exist": (
        "drnet",
        "stage2",
        {"stage1_workdir": "missing"},
        "empty",
        ["config.stage1_workdir: no stage-1 run or checkpoints at", "expected a run's workdir (holding checkpoints/)"],
    ),
    "stage1_workdir holding a stage-2 run": (
        "vdsm",
        "stage2",
        {"stage1_workdir": "vdsm_stage2_run"},
        "missing",
        ["config.stage1_workdir:", "vdsm_stage2_run holds a stage-2 run; expected a stage-1 run"],
    ),
}


@pytest.mark.parametrize("case", sorted(TRAINING_PATH_CASES))
def test_training_paths_are_refused_before_anything_is_built(case, files, tiny_moving_mnist, capsys):
    model, stage, paths, workdir, expected = TRAINING_PATH_CASES[case]
    config = _tiny(model, stage, **{"data_dir": tiny_moving_mnist, **{k: files[v] for k, v in paths.items()}})
    _assert_names(_check_run_message(config, files[workdir], model, capsys), expected)


@pytest.mark.parametrize(
    "config_arg, expected",
    [
        ("configs/vdsm/nope.py", ["--config configs/vdsm/nope.py: no config file configs/vdsm/nope.py", "get_config"]),
        (
            "configs/vdsm/tiny.py:stage3",
            ["get_config of configs/vdsm/tiny.py refuses 'stage3'", "expected configs/vdsm/tiny.py:stage1|stage2|both"],
        ),
        ("configs/drnet/kth.py:256", ["get_config of configs/drnet/kth.py refuses '256'", "unknown argument '256'"]),
    ],
)
def test_a_missing_config_file_or_an_argument_it_refuses_is_one_flag_error(config_arg, expected, capsys, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    code, err = _run_main(cli.parse_flags, ["main", "--config", config_arg, "--workdir", "w"], capsys)
    assert code == 1 and "Traceback" not in err
    assert err.startswith("FATAL Flags parsing error: ")
    _assert_names(err, expected)


def test_an_unknown_override_names_the_field_the_file_and_the_closest():
    message = cli.unknown_field(_tiny("drnet"), "stage2.nitter", "configs/drnet/tiny.py")
    assert message == (
        "--config.stage2.nitter: config.stage2 of configs/drnet/tiny.py has no field 'nitter' (closest: niter)"
    )


# ----------------------------------------------------------------------------------------------------------------------
# Checkpoints (training resume, the APIs and evaluation all read them through vdcore.checkpoint).
# ----------------------------------------------------------------------------------------------------------------------


def _cut_meta(run: str, step: int) -> None:
    path = os.path.join(run, CHECKPOINT_SUBDIR, str(step), "meta", "metadata")
    text = pathlib.Path(path).read_text()
    pathlib.Path(path).write_text(text[: len(text) // 2])


def test_a_damaged_newest_checkpoint_is_named_moved_aside_and_the_previous_read(tmp_path):
    run = _fake_run(tmp_path / "run", VDSM_FORMAT, 1, steps=(1, 2))
    _cut_meta(run, 2)
    assert Checkpointer(os.path.join(run, CHECKPOINT_SUBDIR)).restore_meta()["step"] == 1
    assert os.path.isdir(os.path.join(run, f"{CHECKPOINT_SUBDIR}_damaged", "2"))


def test_when_no_checkpoint_restores_the_api_names_each_and_its_damage(tmp_path):
    run = _fake_run(tmp_path / "run", VDSM_FORMAT, 1)
    _cut_meta(run, 1)
    with pytest.raises(DamagedCheckpointError) as error:
        VDSM.from_checkpoint(run)
    _assert_names(str(error.value), [f"{CHECKPOINT_SUBDIR} restores completely", f"{CHECKPOINT_SUBDIR}/1: "])


# ----------------------------------------------------------------------------------------------------------------------
# Converters: vdsm_jax.convert_torch / drnet_jax.convert_torch (their convert functions; the CLIs at the end).
# ----------------------------------------------------------------------------------------------------------------------


def _vdsm_convert(path: str, workdir: str, **fields) -> None:
    from vdsm_jax.convert_torch import convert

    convert(_tiny("vdsm", "stage1", **fields), path, workdir)


def _drnet_convert(path: str, workdir: str, epoch: int = 0) -> None:
    from drnet_jax.convert_torch import convert

    convert(_tiny("drnet", "stage1"), path, workdir, epoch=epoch)


CONVERTER_CASES = {
    "vdsm: missing file": (
        lambda f, w: _vdsm_convert(f["missing"], w),
        TorchCheckpointError,
        ["missing: no such file"],
    ),
    "vdsm: a text file": (
        lambda f, w: _vdsm_convert(f["text_pth"], w),
        TorchCheckpointError,
        ["text.pth: not a torch checkpoint (neither a zip archive nor a legacy pickle)"],
    ),
    "vdsm: a run folder": (
        lambda f, w: _vdsm_convert(f["vdsm_run"], w),
        TorchCheckpointError,
        ["vdsm_run: a folder, not a torch.save file; expected the .pth file itself"],
    ),
    "vdsm: not a state dict": (
        lambda f, w: _vdsm_convert(f["tensor_model"], w),
        TorchCheckpointError,
        ["tensor_model.pt: not a VDSM checkpoint (expected {'epoch', 'model': state_dict", "'model' entry is a tensor"],
    ),
    "vdsm: a DRNet authors' file": (
        lambda f, w: _vdsm_convert(f["drnet_pth"], w),
        TorchCheckpointError,
        ["model.pth: not a VDSM checkpoint: it pickles whole torch modules", "drnet_jax.DRNet.from_checkpoint"],
    ),
    "vdsm: shapes the config does not have": (
        lambda f, w: _vdsm_convert(f["vdsm_pth"], w, z_dim=5),
        TorchCheckpointError,
        ["does not match the config (z_dim=5", "enc.muvar.bias: expected shape (10,), found (8,)"],
    ),
    "vdsm: a workdir that holds checkpoints": (
        lambda f, w: _vdsm_convert(f["vdsm_pth"], f["drnet_run"]),
        RunExistsError,
        ["drnet_run already holds checkpoints; write the new run into an empty workdir"],
    ),
    "vdsm: a workdir that is a file": (
        lambda f, w: _vdsm_convert(f["vdsm_pth"], f["a_file"]),
        RunExistsError,
        ["a_file is a file; expected a folder for the run"],
    ),
    "drnet: an original VDSM file": (
        lambda f, w: _drnet_convert(f["vdsm_pth"], w),
        TorchCheckpointError,
        ["2_VDSM_EncDec.pth: not a DRNet checkpoint", "original VDSM file", "vdsm_jax.VDSM.from_checkpoint"],
    ),
    "drnet: not an authors' dict": (
        lambda f, w: _drnet_convert(f["tensor_model"], w),
        TorchCheckpointError,
        ["not a DRNet checkpoint: expected a dict with 'netEC', 'netEP', 'netD'", "found ['model']"],
    ),
    "drnet: negative epoch": (
        lambda f, w: _drnet_convert(f["drnet_pth"], w, epoch=-1),
        ValueError,
        ["epoch must be an int >= 0, got -1"],
    ),
}


@pytest.mark.parametrize("case", sorted(CONVERTER_CASES))
def test_converters(case, files, tmp_path):
    convert, error_type, expected = CONVERTER_CASES[case]
    with pytest.raises(error_type) as error:
        convert(files, str(tmp_path / "new_run"))
    _assert_names(str(error.value), expected)
    assert not (tmp_path / "new_run").exists()


# ----------------------------------------------------------------------------------------------------------------------
# Evaluation: vdsm_jax.evaluate / drnet_jax.evaluate, and the judge they load (vdeval.trained_judge).
# ----------------------------------------------------------------------------------------------------------------------


def _evaluate(model: str, workdir: str, judge: str) -> None:
    if model == "vdsm":
        from vdsm_jax.evaluate import evaluate
    else:
        from drnet_jax.evaluate import evaluate
    evaluate(workdir, judge, seeds=[0])


def _judge(workdir: str) -> None:
    from vdeval.trained_judge import TrainedJudge

    TrainedJudge.from_workdir(workdir)


def _judge_of(dataset: str, size: int, channels: int):
    from vdeval.trained_judge import TrainedJudge

    meta = {"dataset": dataset, "video_shape": [6, size, size, channels], "heads": []}
    return TrainedJudge(None, None, meta, workdir="judges/J")


EVALUATION_CASES = {
    "vdsm: no run there": (
        lambda f: _evaluate("vdsm", f["missing"], f["empty"]),
        CheckpointNotFoundError,
        [
            "no VDSM run or checkpoints at",
            "missing: expected a run's workdir (holding checkpoints/) or its checkpoints folder",
        ],
    ),
    "vdsm: a folder without checkpoints": (
        lambda f: _evaluate("vdsm", f["empty"], f["empty"]),
        CheckpointNotFoundError,
        ["no checkpoint in", "empty: expected folders named by their step", "found nothing"],
    ),
    "vdsm: a DRNet run": (
        lambda f: _evaluate("vdsm", f["drnet_run"], f["empty"]),
        CheckpointMismatchError,
        ["drnet_run: not a vdsm_jax checkpoint (meta format 'drnet_jax", "loads with drnet_jax.DRNet.from_checkpoint"],
    ),
    "drnet: a VDSM run": (
        lambda f: _evaluate("drnet", f["vdsm_run"], f["empty"]),
        CheckpointMismatchError,
        ["vdsm_run: not a drnet_jax checkpoint (meta format 'vdsm_jax", "loads with vdsm_jax.VDSM.from_checkpoint"],
    ),
    "judge: no judge there": (
        lambda f: _judge(f["empty"]),
        CheckpointNotFoundError,
        ["no judge at", "empty (no checkpoints/); train one with: python -m vdeval.judge train"],
    ),
    "judge: a VDSM run": (
        lambda f: _judge(f["vdsm_run"]),
        CheckpointMismatchError,
        ["vdsm_run: not a judge checkpoint (meta format 'vdsm_jax.checkpoint/1')", "vdsm_jax.VDSM.from_checkpoint"],
    ),
    "judge: of another dataset": (
        lambda f: _judge_of("moving_mnist", 64, 3).check_matches("sprites", 64, 3, "run R"),
        CheckpointMismatchError,
        ["judge judges/J was trained on 'moving_mnist' clips of 64x64x3, but run R is 'sprites' at 64x64x3"],
    ),
    "judge: of another image size": (
        lambda f: _judge_of("kth", 64, 1).check_matches("kth", 128, 1, "run R"),
        CheckpointMismatchError,
        ["'kth' clips of 64x64x1, but run R is 'kth' at 128x128x1", "python -m vdeval.judge train --dataset kth"],
    ),
}


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("batch_size", -3, "config.batch_size must be an integer >= 1, got -3"),
        ("steps", 0, "config.steps must be an integer >= 1, got 0"),
        ("lr", 0.0, "config.lr must be > 0, got 0.0"),
        ("b1", 1.0, "config.b1 must be in [0, 1), got 1.0"),
        ("augment_strength", -0.1, "config.augment_strength must be in [0, 1], got -0.1"),
        ("seq_len", -2, "config.seq_len must be >= 0 (0: the dataset's clip length), got -2"),
    ],
)
def test_judge_settings_are_refused_before_any_data_is_read(setting, value, expected, tmp_path):
    from vdeval.judge_train import default_config, train_and_evaluate

    config = default_config()
    config.update({"dataset": "moving_mnist", "data_dir": str(tmp_path / "nothing_built"), setting: value})
    with pytest.raises(ValueError) as error:
        train_and_evaluate(config, str(tmp_path / "judge"))
    assert str(error.value) == expected


@pytest.mark.parametrize("case", sorted(EVALUATION_CASES))
def test_evaluation(case, files):
    call, error_type, expected = EVALUATION_CASES[case]
    with pytest.raises(error_type) as error:
        call(files)
    _assert_names(str(error.value), expected)


def test_evaluate_seeds_flag_must_be_integers():
    from vdeval.evaluate_cli import _are_seeds

    assert _are_seeds(["0", "1", "2"]) and not _are_seeds(["x"]) and not _are_seeds([])


# ----------------------------------------------------------------------------------------------------------------------
# Python APIs: VDSM and DRNet (inputs are checked before any network runs, so untrained modules do).
# ----------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vdsm_stage1() -> VDSM:
    config = _tiny("vdsm", "stage1")
    return VDSM(VDSMModules.from_config(config), {}, config)


@pytest.fixture(scope="module")
def drnet_stage1() -> DRNet:
    config = _tiny("drnet", "stage1")
    return DRNet(DRNetModules.from_config(config), {}, {}, config)


VIDEOS = np.zeros((2, 3, 64, 64, 3), np.float32)
KEY = jax.random.key(0)

API_CASES = {
    "vdsm: 0..255 floats": (
        lambda m, d, f: m.encode(VIDEOS + 200.0),
        ValueError,
        ["videos: float values span [200, 200]; expected pixels in [0, 1]", "pass videos / 255, or the uint8 array"],
    ),
    "vdsm: [-1, 1] floats": (
        lambda m, d, f: m.swap(VIDEOS - 0.5, VIDEOS),
        ValueError,
        ["identity_from: float values span [-0.5, -0.5]", "look like [-1, 1] pixels: pass (identity_from + 1) / 2"],
    ),
    "vdsm: int64 pixels": (
        lambda m, d, f: m.reconstruct(VIDEOS.astype(np.int64)),
        ValueError,
        ["videos: dtype int64 is not a pixel format; expected uint8 0..255 (divided by 255) or float in [0, 1]"],
    ),
    "vdsm: channels first": (
        lambda m, d, f: m.encode(np.moveaxis(VIDEOS, -1, -3)),
        ValueError,
        ["videos is channels-first (2, 3, 3, 64, 64); expected channels last", "np.moveaxis"],
    ),
    "vdsm: no frames": (
        lambda m, d, f: m.encode(VIDEOS[:, :0]),
        ValueError,
        ["videos must have shape (B, T, 64, 64, 3) (channels last); got (2, 0, 64, 64, 3)"],
    ),
    "vdsm: stage 2 needed": (
        lambda m, d, f: m.hold_identity(VIDEOS, KEY),
        ValueError,
        ["hold_identity samples the dynamics from the learnt prior, which a stage-1 VDSM does not have"],
    ),
    "vdsm: a seed for a key": (
        lambda m, d, f: m.generate(0, 2, 3),
        TypeError,
        ["rng must be one PRNG key, e.g. jax.random.key(0); got int"],
    ),
    "vdsm: zero sequences": (lambda m, d, f: m.generate(KEY, 0, 3), ValueError, ["n must be an int >= 1, got 0"]),
    "vdsm: stage-1 seq_len other than the videos'": (
        lambda m, d, f: m.hold_dynamics(VIDEOS, KEY, 5),
        ValueError,
        ["seq_len must be the videos' length 3, got 5"],
    ),
    "vdsm: a DRNet run": (
        lambda m, d, f: VDSM.from_checkpoint(f["drnet_run"]),
        CheckpointMismatchError,
        ["not a vdsm_jax checkpoint (meta format 'drnet_jax.checkpoint/1')", "drnet_jax.DRNet.from_checkpoint"],
    ),
    "vdsm: a DRNet authors' file": (
        lambda m, d, f: VDSM.from_checkpoint(f["drnet_pth"], m.config),
        TorchCheckpointError,
        ["model.pth: not a VDSM checkpoint: it pickles whole torch modules", "drnet_jax.DRNet.from_checkpoint"],
    ),
    "vdsm: a torch file without its config": (
        lambda m, d, f: VDSM.from_checkpoint(f["vdsm_pth"]),
        ValueError,
        ["2_VDSM_EncDec.pth: a PyTorch VDSM checkpoint holds no config; pass the run's config"],
    ),
    "drnet: 0..255 floats": (
        lambda m, d, f: d.analogy(VIDEOS[:, 0] + 200.0, VIDEOS),
        ValueError,
        ["content_frames: float values span [200, 200]; expected pixels in [0, 1]", "content_frames / 255"],
    ),
    "drnet: channels first": (
        lambda m, d, f: d.pose(np.zeros((2, 3, 64, 64), np.float32)),
        ValueError,
        ["frames is channels-first (2, 3, 64, 64); expected channels last (B, 64, 64, 3)"],
    ),
    "drnet: stage 2 needed": (
        lambda m, d, f: d.predict(VIDEOS, 3),
        ValueError,
        ["this is a stage-1 DRNet (no pose LSTM); load a stage-2 run to predict"],
    ),
    "drnet: a VDSM run": (
        lambda m, d, f: DRNet.from_checkpoint(f["vdsm_run"]),
        CheckpointMismatchError,
        ["not a drnet_jax checkpoint (meta format 'vdsm_jax.checkpoint/1')", "vdsm_jax.VDSM.from_checkpoint"],
    ),
    "drnet: an original VDSM file": (
        lambda m, d, f: DRNet.from_checkpoint(f["vdsm_pth"], d.config),
        TorchCheckpointError,
        ["2_VDSM_EncDec.pth: not a DRNet checkpoint", "vdsm_jax.VDSM.from_checkpoint"],
    ),
}


@pytest.mark.parametrize("case", sorted(API_CASES))
def test_python_apis(case, vdsm_stage1, drnet_stage1, files):
    call, error_type, expected = API_CASES[case]
    with pytest.raises(error_type) as error:
        call(vdsm_stage1, drnet_stage1, files)
    _assert_names(str(error.value), expected)


# ----------------------------------------------------------------------------------------------------------------------
# The real command lines (each ~5 s of imports, so a few, started together): one error line, exit status 1.
# ----------------------------------------------------------------------------------------------------------------------

COMMAND_CASES = {
    "vdsm training: out-of-range value": (
        ["vdsm_jax.main", "--config", "configs/vdsm/tiny.py", "--workdir", "{tmp}/run", "--config.bs=-4"],
        "python -m vdsm_jax.main: error: config.bs must be an integer >= 1, got -4",
    ),
    "drnet training: stage 2 from a folder without checkpoints": (
        ["drnet_jax.main", "--config", "configs/drnet/tiny.py:stage2", "--workdir", "{tmp}/run"]
        + ["--config.stage1_workdir", "{empty}"],
        "python -m drnet_jax.main: error: config.stage1_workdir: no checkpoint in {empty}",
    ),
    "vdsm converter: a text file": (
        ["vdsm_jax.convert_torch", "--config", "configs/vdsm/tiny.py:stage1", "--workdir", "{tmp}/run"]
        + ["--torch_checkpoint", "{text_pth}"],
        "python -m vdsm_jax.convert_torch: error: {text_pth}: not a torch checkpoint",
    ),
    "drnet converter: an original VDSM file": (
        ["drnet_jax.convert_torch", "--config", "configs/drnet/tiny.py:stage1", "--workdir", "{tmp}/run"]
        + ["--torch_checkpoint", "{vdsm_pth}"],
        "python -m drnet_jax.convert_torch: error: {vdsm_pth}: not a DRNet checkpoint",
    ),
    "drnet evaluation: a VDSM run": (
        ["drnet_jax.evaluate", "--workdir", "{vdsm_run}", "--judge", "{empty}"],
        "python -m drnet_jax.evaluate: error: {vdsm_run}: not a drnet_jax checkpoint",
    ),
    "judge: train without --dataset (absl's usage error: the help, then this line)": (
        ["vdeval.judge", "train", "--workdir", "{tmp}/judge"],
        "train needs --dataset, one of moving_mnist, sprites, pendulum, mug_fed, kth",
    ),
    "judge: unknown dataset": (
        ["vdeval.judge", "train", "--dataset", "nope", "--workdir", "{tmp}/judge", "--data_dir", "{empty}"],
        "python -m vdeval.judge: error: unknown dataset 'nope'; known datasets:",
    ),
    "judge: a setting out of range": (
        ["vdeval.judge", "train", "--dataset", "moving_mnist", "--workdir", "{tmp}/judge", "--batch_size=-3"],
        "python -m vdeval.judge: error: config.batch_size must be an integer >= 1, got -3",
    ),
}


@pytest.fixture(scope="module")
def command_results(files, tmp_path_factory) -> dict[str, tuple[int, str, pathlib.Path]]:
    """{case: (exit status, stderr, its tmp folder)} of COMMAND_CASES, run as concurrent processes."""
    started = {}
    for name, (argv, _) in COMMAND_CASES.items():
        tmp = tmp_path_factory.mktemp("command")
        argv = [arg.format(tmp=tmp, **files) for arg in argv]
        started[name] = (
            subprocess.Popen(
                [sys.executable, "-m", *argv], cwd=REPO_ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
            ),
            tmp,
        )
    results = {}
    for name, (process, tmp) in started.items():
        _, err = process.communicate(timeout=300)
        results[name] = (process.returncode, err.decode(), tmp)
    return results


@pytest.mark.parametrize("case", sorted(COMMAND_CASES))
def test_commands_end_with_one_error_line(case, command_results, files):
    code, err, tmp = command_results[case]
    expected = COMMAND_CASES[case][1].format(**files)
    assert code == 1 and "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1].startswith(expected), err[-3000:]
    assert not (tmp / "run").exists()
