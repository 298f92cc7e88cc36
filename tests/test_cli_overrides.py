"""Unknown --config.X overrides are reported by name, with the config file and the closest valid fields."""

from __future__ import annotations

import importlib
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


VDSM_BAD = [
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
    ("keep_period", 15, "config.keep_period (15 epochs) must be a multiple of config.model_save_interval (10)"),
    ("identity_prior", "empirical", "config.identity_prior must be one of ('original', 'fitted'), got 'empirical'"),
]


DRNET_BAD = [
    ("batch_size", 1, "config.batch_size must be >= 2 (the scene discriminator splits it in halves), got 1"),
    ("content_dim", 0, "config.content_dim must be an integer >= 1, got 0"),
    ("lr", 0.0, "config.lr must be > 0, got 0.0"),
    ("beta1", 1.0, "config.beta1 must be in [0, 1), got 1.0"),
    ("sd_weight", -1e-4, "config.sd_weight must be >= 0, got -0.0001"),
    ("optimizer", "adamw", "config.optimizer must be one of ('adam', 'rmsprop', 'sgd'), got 'adamw'"),
    ("frame_selection", "last4", "config.frame_selection must be one of ('first4', 'random'), got 'last4'"),
    ("model_test_interval", -1, "config.model_test_interval must be >= 0"),
    ("keep_period", -1, "config.keep_period must be an integer >= 0 (epochs; 0 = off), got -1"),
]


@pytest.mark.parametrize(
    ("package", "field", "value", "expected"),
    [("vdsm_jax", *case) for case in VDSM_BAD] + [("drnet_jax", *case) for case in DRNET_BAD],
)
def test_settings_no_run_can_use_are_refused_naming_field_value_and_expectation(package, field, value, expected):
    defaults = importlib.import_module(f"{package}.config_defaults")
    config = defaults.base_config()
    defaults.check_config(config)
    config.unlock()
    config[field] = value
    with pytest.raises(ValueError) as error:
        defaults.check_config(config)
    assert expected in str(error.value)


SHIPPED = [("vdsm", n) for n in ("moving_mnist", "mug_fed", "pendulum", "quickstart", "sprites", "tiny")]
SHIPPED += [("drnet", n) for n in ("kth", "moving_mnist", "quickstart", "tiny")]


@pytest.mark.parametrize(("model", "name"), SHIPPED)
def test_every_shipped_config_passes_the_check_in_both_stages(model, name):
    from vdcore.run_config import stage_config

    defaults = importlib.import_module(f"{model}_jax.config_defaults")
    config = cli.load_config_file(f"configs/{model}/{name}.py", "")
    for stage in (1, 2):
        defaults.check_config(stage_config(config, stage))
