import json
import os
from pathlib import Path

import pytest

from bigram_lightning.cli import main
from bigram_lightning.corpus import census_first_names

REPO = Path(__file__).resolve().parents[1]
# makemore's names.txt is never committed; the tests read the copy in ../shared/data/
NAMES_TXT = Path(os.environ.get("BIGRAM_NAMES_TXT", REPO.parent / "shared" / "data" / "names.txt"))


@pytest.fixture(scope="session")
def names_txt() -> Path:
    if not NAMES_TXT.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{NAMES_TXT} is missing: CI needs makemore's names.txt there")
        pytest.skip(f"makemore's names.txt not found at {NAMES_TXT} (set BIGRAM_NAMES_TXT)")
    return NAMES_TXT


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
    """600 real first names: enough for train/val/test splits, small enough for a run in about a second."""
    path = workdir / "words.txt"
    path.write_text("\n".join(census_first_names()[::8][:600]) + "\n")
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
    (root / "words.txt").write_text("\n".join(census_first_names()[::8][:600]) + "\n")
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
def tool(capsys):
    """Run a tool's main(argv) in-process; returns (exit code, stdout, stderr)."""

    def run(main_fn, *args: str):
        code = main_fn(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def read_wandb_records(path: Path) -> list:
    """The records of an offline run's run-<id>.wandb file: W&B's LevelDB-style log (blocks of 32 KiB, each
    record in chunks with a 7-byte header: CRC, length, type) of protobuf Records. Lets tests check what a run
    would upload without a server."""
    import struct

    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pos, chunks = [], 7, b""
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:
            break
        chunks += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunks)
            records.append(record)
            chunks = b""
    return records
