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


def test_every_config_file_names_a_defined_dataset_config_and_passes_its_checks_in_both_stages():
    """A config pointing at a dataset config its builder no longer defines, or holding a value its model's
    check refuses (an lr drop past its stage's epochs, a keep_period off the save interval), would fail only
    when run."""
    from conftest import load_config_file

    from data_prep.builders import builder_class
    from drnet_jax import config_defaults as drnet_defaults
    from vdsm_jax import config_defaults as vdsm_defaults

    paths = sorted(p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "configs").glob("*/*.py"))
    assert len(paths) >= 10, paths
    for path in paths:
        config = load_config_file(path)
        defined = {c.name for c in builder_class(config.dataset).BUILDER_CONFIGS}
        assert config.dataset_config in defined, (path, config.dataset, config.dataset_config, sorted(defined))
        defaults = {"vdsm": vdsm_defaults, "drnet": drnet_defaults}[path.split("/")[1]]
        for stage in (1, 2):
            defaults.check_config(defaults.stage_config(config, stage))


# Lower layers never import higher ones: the data layer knows nothing of training, the shared package nothing of
# evaluation or the models, and evaluation nothing of the models (the models call it). The two models are peers.
LAYERS = {"data_prep": 0, "vdcore": 1, "vdeval": 2, "vdsm_jax": 3, "drnet_jax": 3}


def _project_imports() -> dict[str, set[str]]:
    """{module: the project modules it imports anywhere in its source (function-level imports included)}."""
    import ast

    modules = {}
    for package in LAYERS:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                candidates = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
            else:
                continue
            for candidate in candidates:
                while candidate and candidate not in modules:
                    candidate = candidate.rpartition(".")[0]
                if candidate and candidate != name:
                    imported.add(candidate)
        graph[name] = imported
    return graph


def test_layers_only_import_downwards_and_models_not_each_other():
    wrong = [
        f"{module} imports {target}"
        for module, targets in _project_imports().items()
        for target in targets
        if (low := module.split(".")[0]) != (high := target.split(".")[0]) and LAYERS[high] >= LAYERS[low]
    ]
    assert not wrong, wrong


def test_no_import_cycles():
    import graphlib

    graph = _project_imports()
    # A package's __init__ importing its own submodules lazily is how it offers its API, not a cycle between layers.
    edges = {m: {t for t in ts if not (graph.get(t) is not None and m.startswith(t + "."))} for m, ts in graph.items()}
    graphlib.TopologicalSorter(edges).prepare()  # raises CycleError naming the cycle
