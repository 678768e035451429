"""README.md's examples of what the programs print are what they print now: docs/readme_examples.py runs the
commands and compares (or rewrites) every block between `<!-- example: NAME -->` and `<!-- /example -->`."""

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"


def readme_examples():
    """docs/readme_examples.py as a module (docs/ is no package: loaded from its file)."""
    if "readme_examples" not in sys.modules:
        spec = importlib.util.spec_from_file_location("readme_examples", REPO / "docs" / "readme_examples.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["readme_examples"] = module  # (dataclasses look their module up while the file executes)
        spec.loader.exec_module(module)
    return sys.modules["readme_examples"]


def test_every_example_in_the_readme_is_generated_and_every_generated_one_is_in_the_readme():
    rx = readme_examples()
    text = README.read_text(encoding="utf-8")
    marked = rx.markers(text)
    assert sorted(marked) == sorted(set(marked)), f"an example marked twice in README.md: {marked}"
    assert sorted(marked) == sorted(rx.EXAMPLES), (
        f"README.md marks {sorted(set(marked) - set(rx.EXAMPLES))} that docs/readme_examples.py does not define, and "
        f"docs/readme_examples.py defines {sorted(set(rx.EXAMPLES) - set(marked))} that README.md does not mark"
    )
    assert text.count("<!-- /example -->") == len(marked), "every <!-- example: NAME --> needs its <!-- /example -->"
    # the blocks can be replaced: each is closed before the next opens
    assert [m["name"] for m in rx.BLOCK.finditer(text)] == marked


@pytest.mark.slow
def test_the_readme_shows_what_the_code_prints(names_txt):
    rx = readme_examples()
    found = rx.check(README)
    assert found == "", f"README.md's examples differ from what the code prints ({rx.HINT}):\n{found}"
