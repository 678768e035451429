"""The benchmark runs end to end on a tiny setting (it is not a timed test: no figure is checked)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # end-to-end: real processes, W&B runs, long trainings

REPO = Path(__file__).resolve().parents[1]


def test_benchmark_runs_and_writes_its_table(tmp_path, names_txt, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("bench", REPO / "benchmarks" / "bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(bench, "NAMES", names_txt)
    out = tmp_path / "bench.json"
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "bench.py",
            "--only",
            "endtoend,throughput,sampling,scale",
            "--pairs",
            "1",
            "--out",
            str(out),
            "--workdir",
            str(tmp_path / "work"),
            "--sizes",
            "200000",
            "--full-steps",
            "1",
            "--epochs-4096",
            "1",
            "--num-samples",
            "2000",
            "--loop-seconds",
            "0.1",
        ],
    )
    bench.main()
    results = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert set(results["throughput"]) == {"full batch", "batch 4096"}
    scale = results["scale"]["0.2M"]
    assert scale["chars"] == 200000
    # the generated corpus has the size asked for, one name per line
    corpus = tmp_path / "work" / "markov-200000.txt"
    assert len(corpus.read_text()) == 200000
    assert "batch 4096, Trainer" in printed and "sampling:" in printed
    if bench.ANCHOR.is_file():  # (the anchor lies beside the project's checkout, not in it)
        (pair,) = results["endtoend"]["pairs"]
        assert list(pair["phases"]) == ["imports", "startup", "data", "train", "pictures", "test", "finish"]
        # the phases run from the process's start to summary.json: within the wall time measured from outside
        assert 0.5 * pair["train_py_s"] <= sum(pair["phases"].values()) <= pair["train_py_s"]
        assert pair["ratio"] == pytest.approx(pair["train_py_s"] / pair["anchor_s"]) and "median ratio" in printed
        assert abs(pair["val_loss"] - pair["val_count_nll"]) <= 0.01
