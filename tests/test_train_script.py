"""The real command, `python train.py`, in a fresh process: what a user runs."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def train_py(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["HOME"] = str(cwd)  # no W&B credentials: the run must go offline by itself
    return subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL,
    )


def summary_of(proc: subprocess.CompletedProcess, cwd: Path) -> dict:
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("summary: "), proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((cwd / last.removeprefix("summary: ")).read_text())
    return {k: str(cwd / v) if k.endswith(("_dir", "_ckpt")) and v else v for k, v in summary.items()}


def test_default_run_reaches_the_count_model_then_resumes(tmp_path, names_txt):
    (tmp_path / "data").mkdir()
    shutil.copy(names_txt, tmp_path / "data" / "names.txt")
    proc = train_py(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    samples = [line for line in proc.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split(" samples: ")[0] for line in samples] == [f"epoch {n}" for n in range(10)]
    summary = summary_of(proc, tmp_path)
    assert abs(summary["val_loss"] - summary["val_count_nll"]) <= 0.01
    assert abs(summary["test_loss"] - summary["test_count_nll"]) <= 0.01
    wandb_files = list(Path(summary["wandb_dir"]).glob(f"run-{summary['wandb_id']}.wandb"))
    assert wandb_files and "wandb sync" in proc.stdout
    # no wall of warnings at start-up: the ones that do not apply to this project are silenced
    assert [line for line in proc.stderr.splitlines() if "warn" in line.lower()] == []

    resumed = train_py(tmp_path, "--ckpt_path", "last", "--max_epochs", "12")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = summary_of(resumed, tmp_path)
    assert after["global_step"] == summary["global_step"] * 12 // 10
    assert after["wandb_id"] == summary["wandb_id"] and after["run_dir"] == summary["run_dir"]


def test_quiet_run_prints_the_result_only(tmp_path):
    from bigram_lightning.data import census_first_names

    (tmp_path / "words.txt").write_text("\n".join(census_first_names()[:600]) + "\n")
    proc = train_py(tmp_path, "--quiet", "--data.path", "words.txt", "--max_epochs", "2")
    assert proc.returncode == 0 and proc.stderr == ""
    lines = proc.stdout.strip().splitlines()
    assert lines[0].split() == ["net", "count", "model", "(+1)"] and lines[-1].startswith("summary: ")
    assert len(lines) == 9  # the table (4), the checkpoints (2), W&B, the pictures, the summary


def test_bad_input_exits_non_zero_with_one_line(tmp_path):
    proc = train_py(tmp_path, "--data.path", "missing.txt", "--max_epochs", "1")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: data file missing.txt not found")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_run(tmp_path, names_txt):
    (tmp_path / "data").mkdir()
    shutil.copy(names_txt, tmp_path / "data" / "names.txt")
    proc = train_py(tmp_path, "--accelerator", "gpu", "--max_epochs", "3", "--logger", "csv")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = summary_of(proc, tmp_path)
    assert abs(summary["val_loss"] - summary["val_count_nll"]) <= 0.02


def test_ddp_on_two_cpu_processes(tmp_path):
    from bigram_lightning.data import census_first_names

    (tmp_path / "words.txt").write_text("\n".join(census_first_names()[:1000]) + "\n")
    proc = train_py(
        tmp_path, "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--data.path", "words.txt",
        "--max_epochs", "2", "--logger", "csv", "--trainer.enable_progress_bar", "false", "--data.batch_size", "128",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = summary_of(proc, tmp_path)
    # one run directory for both processes, samples printed by rank 0 only
    assert len(list((tmp_path / "runs").iterdir())) == 1
    assert sum(line.startswith("epoch 0 samples:") for line in proc.stdout.splitlines()) == 1
    assert summary["val_loss"] < 3.0
