"""The code's own rules: ruff's format and checks, and no private member of torch, Lightning, W&B, jsonargparse or
argparse anywhere (their next release may rename it)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted([*REPO.glob("bigram_lightning/*.py"), *REPO.glob("tests/*.py"), *REPO.glob("benchmarks/*.py"),
                  REPO / "train.py"])  # fmt: skip


@pytest.mark.parametrize("args", [["format", "--check"], ["check"]], ids=["format", "check"])
def test_ruff(args):
    proc = subprocess.run([sys.executable, "-m", "ruff", *args, "."], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_private_members_are_touched():
    """No attribute or imported module with a leading underscore (dunders aside). Allowed: `_shared_step`, the
    project's own after Lightning's style guide, and os._exit, documented public API."""
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
