"""Unknown --config.X overrides are reported by name, with the config file and the closest valid fields."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vdcore import cli
from vdsm_jax.config_defaults import base_config


def test_a_known_field_and_a_known_nested_field_pass():
    config = base_config()
    assert cli.unknown_field(config, "bs", "c.py") is None
    assert cli.unknown_field(config, "stage2.epochs", "c.py") is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("epoch", "the config of c.py has no field 'epoch' (closest: epochs"),
        ("stage2.epoch", "config.stage2 of c.py has no field 'epoch' (closest: epochs"),
        ("bs.x", "bs of c.py is a value, not a block of fields"),
    ],
)
def test_an_unknown_field_names_itself_the_file_and_the_closest_fields(name, expected):
    message = cli.unknown_field(base_config(), name, "c.py")
    assert message.startswith(f"--config.{name}: ")
    assert expected in message


def test_a_name_close_to_nothing_lists_the_fields_of_its_block():
    message = cli.unknown_field(base_config(), "stage2.zzzz", "c.py")
    assert "its fields: " in message and "epochs" in message and "bs_per_epoch" in message


@pytest.mark.parametrize(
    "package, config", [("vdsm_jax", "configs/vdsm/tiny.py"), ("drnet_jax", "configs/drnet/tiny.py")]
)
def test_the_training_commands_refuse_an_unknown_override_in_one_line(package, config, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            f"{package}.main",
            "--config",
            config,
            "--workdir",
            str(tmp_path / "run"),
            "--config.seed",
            "1",
            "--config.not_a_key=3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"--config.not_a_key: the config of {config} has no field 'not_a_key'" in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_value_of_the_wrong_type_is_one_flag_error(tmp_path):
    command = [sys.executable, "-m", "vdsm_jax.main", "--config", "configs/vdsm/tiny.py"]
    command += ["--workdir", str(tmp_path / "run"), "--config.bs=abc"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "FATAL Flags parsing error: flag --config.bs=abc: invalid literal for int() with base 10: 'abc'" in (
        result.stderr
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("bs", -4, "config.bs must be an integer >= 1, got -4"),
        ("rnn_layers", 0, "config.rnn_layers must be an integer >= 1, got 0"),
        ("image_size", 0, "config.image_size must be an integer >= 1, got 0"),
        ("lr_VDSMSeq", 0.0, "config.lr_VDSMSeq must be > 0, got 0.0"),
        ("anneal_frac_id", -1.0, "config.anneal_frac_id must be > 0, got -1.0"),
        ("anneal_t_midfrac1", 0.9, "0 < midfrac1 < midfrac2 < 1, got 0.9, 0.8"),
        ("rnn_dropout", 1.0, "config.rnn_dropout must be in [0, 1), got 1.0"),
        ("conv_impl", "gpu", "config.conv_impl must be one of ('auto', 'fast', 'xla'), got 'gpu'"),
        ("model_save_interval", 0, "config.model_save_interval must be an integer >= 1, got 0"),
        ("model_test_interval", -1, "config.model_test_interval must be >= 0"),
    ],
)
def test_vdsm_settings_no_run_can_use_are_refused_naming_field_value_and_expectation(field, value, expected):
    from vdsm_jax.config_defaults import check_config

    config = base_config()
    check_config(config)
    config.unlock()
    config[field] = value
    with pytest.raises(ValueError) as error:
        check_config(config)
    assert expected in str(error.value)


@pytest.mark.parametrize("name", ["moving_mnist", "mug_fed", "pendulum", "quickstart", "sprites", "tiny"])
def test_every_shipped_vdsm_config_passes_the_check_in_both_stages(name):
    from vdcore.run_config import stage_config
    from vdsm_jax.config_defaults import check_config

    config = cli.load_config_file(f"configs/vdsm/{name}.py", "")
    for stage in (1, 2):
        check_config(stage_config(config, stage))
