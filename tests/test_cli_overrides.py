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
