"""The README's commands and CI stay in step."""

import re

from conftest import REPO_ROOT


def _readme_commands() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_readme_has_exactly_two_commands():
    commands = _readme_commands()
    assert len(commands) == 2, commands
    assert "vdsm_jax.main --config configs/vdsm/quickstart.py" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert _readme_commands()[1] in ci.splitlines()


def test_setup_pins_exact_versions():
    setup = (REPO_ROOT / "setup.py").read_text(encoding="utf-8")
    requirements = re.findall(r'^\s+"([A-Za-z0-9_.\-\[\]]+)([=<>!~]=?)?([^"]*)",', setup, re.M)
    assert requirements
    for name, op, _ in requirements:
        assert op == "==", f"{name} is not pinned exactly"


def test_every_config_file_names_a_defined_dataset_config():
    """A config pointing at a dataset config its builder no longer defines would fail only when run."""
    from conftest import load_config_file

    from data_prep.builders import builder_class

    paths = sorted(p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "configs").glob("*/*.py"))
    assert len(paths) >= 10, paths
    for path in paths:
        config = load_config_file(path)
        defined = {c.name for c in builder_class(config.dataset).BUILDER_CONFIGS}
        assert config.dataset_config in defined, (path, config.dataset, config.dataset_config, sorted(defined))
