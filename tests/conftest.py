import json
import os
from pathlib import Path

import pytest

from bigram_lightning.download import census_first_names
from bigram_lightning.run.main import main

REPO = Path(__file__).resolve().parents[1]
# makemore's names.txt is never committed: the tests find it in $BIGRAM_NAMES_TXT, ../shared/data/ (CI) or data/
# (where the first `python train.py` of a clone puts it)
CANDIDATES = [
    os.environ.get("BIGRAM_NAMES_TXT"),
    REPO.parent / "shared" / "data" / "names.txt",
    REPO / "data" / "names.txt",
]
NAMES_TXT = next((Path(p) for p in CANDIDATES if p and Path(p).is_file()), None)


@pytest.fixture(scope="session")
def names_txt() -> Path:
    if NAMES_TXT is None:
        if os.environ.get("CI"):
            pytest.fail("makemore's names.txt is missing: CI needs it in ../shared/data/")
        pytest.skip("makemore's names.txt not found (python train.py downloads it to data/; or set BIGRAM_NAMES_TXT)")
    return NAMES_TXT


# the small word list of most tests: 600 real first names, enough for train/val/test splits, a run in about a second
WORDS = "\n".join(census_first_names()[::8][:600]) + "\n"


@pytest.fixture(scope="session")
def names_words(names_txt) -> list[str]:
    return names_txt.read_text().splitlines()


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A fresh working directory per test; W&B offline, as with no network."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    return tmp_path


@pytest.fixture
def words_file(workdir) -> Path:
    """WORDS in the test's working directory."""
    path = workdir / "words.txt"
    path.write_text(WORDS)
    return path


QUIET = ["--trainer.enable_progress_bar", "false", "--logger", "csv"]


@pytest.fixture
def train(capsys):
    """Run `python train.py ARGS` in-process; returns (exit code, stdout, stderr, summary dict or None)."""

    def run(*args: str, quiet: bool = True):
        code = main([*(QUIET if quiet else []), *args])
        out, err = capsys.readouterr()
        lines = out.strip().splitlines()
        summary = None
        if lines and lines[-1].startswith("summary: "):
            summary = json.loads(Path(lines[-1].removeprefix("summary: ")).read_text())
        return code, out, err, summary

    return run


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Path:
    """A directory where train.py has run once (2 epochs on 600 names, CSV logger): the tools' test bench.
    Tests cd into it with `in_trained`; they must not change it."""
    root = tmp_path_factory.mktemp("trained")
    (root / "words.txt").write_text(WORDS)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main([*QUIET, "--data.path", "words.txt", "--max_epochs", "2", "--samples.num", "0"]) == 0
    finally:
        os.chdir(cwd)
    return root


@pytest.fixture
def in_trained(trained, monkeypatch) -> Path:
    monkeypatch.chdir(trained)
    return trained


@pytest.fixture
def data_moved_away(in_trained, tmp_path, monkeypatch) -> Path:
    """A copy of the trained checkpoint whose data file has moved away (gone.txt), in a directory of its own."""
    import torch

    raw = torch.load(next(in_trained.glob("runs/*/checkpoints/last.ckpt")), weights_only=True)
    raw["datamodule_hyper_parameters"].update(data_file="gone.txt", data_abspath=str(tmp_path / "gone.txt"))
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    torch.save(raw, path)
    monkeypatch.chdir(tmp_path)
    return path


@pytest.fixture
def tool(capsys):
    """Run a tool's main(argv) in-process; returns (exit code, stdout, stderr)."""

    def run(main_fn, *args: str):
        code = main_fn(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def wandb_runs(monkeypatch) -> list[dict]:
    """What each W&B run of the test recorded, through W&B's public API: wandb.init's arguments, every row given to
    run.log, and, when it finishes, its config and the keys of its summary. (An offline run's .wandb file has no
    documented reader.)"""
    import wandb

    runs, init = [], wandb.init

    def spy_init(*args, **kwargs):
        run, seen = init(*args, **kwargs), {"init": kwargs, "rows": []}
        log, finish = run.log, run.finish

        def spy_log(row, *a, **k):
            seen["rows"].append(dict(row))
            return log(row, *a, **k)

        def spy_finish(*a, **k):
            keys = set(run.summary.keys())
            seen.update(config=dict(run.config), summary=keys, summary_values={k: run.summary[k] for k in keys})
            return finish(*a, **k)

        run.log, run.finish = spy_log, spy_finish
        runs.append(seen)
        return run

    monkeypatch.setattr(wandb, "init", spy_init)
    return runs


def assert_loads_without_a_trainer(path) -> None:
    """`BigramLM.load_from_checkpoint(path)`, as any Lightning user loads a model, with no Trainer: the checkpoint's W
    and vocabulary, and a working forward (the identity's one-hot rows give W back)."""
    import torch
    import torch.nn.functional as F

    from bigram_lightning import BigramLM

    model = BigramLM.load_from_checkpoint(path)
    raw = torch.load(path, weights_only=True)
    assert torch.equal(model.W.detach(), raw["state_dict"]["W"])
    assert model.hparams.vocab == raw["hyper_parameters"]["vocab"]
    V = len(model.hparams.vocab)
    xenc = F.one_hot(torch.arange(V), V).to(model.W.dtype)
    assert torch.equal(model(xenc), model.W)
