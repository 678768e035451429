"""The code's own rules: ruff's format and checks (E501 at 120 columns, C901 at complexity 12), plain code (no
`# fmt: skip`, no os._exit, no hand-written autograd), a core/ that stands alone, and no private member of torch,
Lightning, W&B, jsonargparse or argparse anywhere (their next release may rename it)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = sorted(REPO.glob("bigram_lightning/**/*.py"))
SOURCES = sorted([*PACKAGE, *REPO.glob("tests/*.py"), *REPO.glob("benchmarks/*.py"), REPO / "train.py"])


@pytest.mark.parametrize("args", [["format", "--check"], ["check"]], ids=["format", "check"])
def test_ruff(args):
    proc = subprocess.run([sys.executable, "-m", "ruff", *args, "."], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_checks_line_length_and_complexity():
    """pyproject.toml switches on E501 (120 columns) and C901 (complexity 12): the check above runs them."""
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["ruff"]
    assert config["line-length"] == 120
    assert "E" in config["lint"]["select"] and "C901" in config["lint"]["select"]
    assert "E501" not in config["lint"].get("ignore", [])
    assert config["lint"]["mccabe"]["max-complexity"] == 12


def test_plain_code():
    """No `# fmt: skip`, no os._exit (a normal interpreter exit), no hand-written autograd.Function, and no module
    over 250 lines, in the package."""
    found = []
    for path in PACKAGE:
        text = path.read_text()
        name = path.relative_to(REPO)
        for bad in ("fmt: skip", "os._exit", "autograd.Function"):
            if bad in text:
                found.append(f"{name}: {bad}")
        if len(text.splitlines()) > 250:
            found.append(f"{name}: {len(text.splitlines())} lines")
    assert found == []


def test_core_imports_nothing_from_the_rest_of_the_package_and_reads_in_minutes():
    """core/ is makemore part 1 alone: it imports no other module of bigram_lightning, and stays within 600 lines."""
    core = sorted((REPO / "bigram_lightning" / "core").glob("*.py"))
    outside = []
    for path in core:
        for node in ast.walk(ast.parse(path.read_text())):
            modules = []
            if isinstance(node, ast.ImportFrom):
                modules = ["." * node.level + (node.module or "")]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            for module in modules:
                if module.startswith(".") or module.startswith("bigram_lightning"):
                    if not module.startswith(("bigram_lightning.core", ".")) or module.startswith(".."):
                        outside.append(f"{path.name}:{node.lineno}: {module}")
    assert outside == []
    assert sum(len(path.read_text().splitlines()) for path in core) <= 600


def test_no_private_members_are_touched():
    """No attribute or imported module with a leading underscore (dunders aside). Allowed: `_shared_step`, the
    project's own after Lightning's style guide, and os._exit in a forked test child (the package has none)."""
    found = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Attribute):
                names = [node.attr]
            elif isinstance(node, ast.ImportFrom):
                names = [*(node.module or "").split("."), *(alias.name for alias in node.names)]
            elif isinstance(node, ast.Import):
                names = [part for alias in node.names for part in alias.name.split(".")]
            for name in names:
                if name.startswith("_") and not name.endswith("__") and name not in ("_shared_step", "_exit"):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}: {name}")
    assert found == []


def test_constraints_min_pins_every_lower_bound():
    """constraints-min.txt holds name==X for every name>=X of the dependencies (torch aside: its build is the
    user's choice), with the very same version string, so that installing with it tests the declared minimums."""
    import re

    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + project["optional-dependencies"]["offline"]
    bounds = {m[1]: m[2] for d in deps if (m := re.match(r"([\w-]+)(?:\[\w+\])?>=([\w.]+)", d)) and m[1] != "torch"}
    lines = (REPO / "constraints-min.txt").read_text().splitlines()
    pins = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    assert pins == bounds
