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
