"""The real command, `python train.py`, in a fresh process: what a user runs."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bigram_lightning.datafile import WordFileDataModule

pytestmark = pytest.mark.slow  # end-to-end: real processes, W&B runs, long trainings
REPO = Path(__file__).resolve().parents[1]


def train_py(cwd: Path, *args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}, **(env or {})}
    env["HOME"] = str(cwd)  # no W&B credentials: the run must go offline by itself
    return subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
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
    summary = summary_of(proc, tmp_path)
    # 200 steps of Adam (45 an epoch) to the count model: the final W's train gap ≤ 0.003 and every probability of
    # softmax(W) within 0.02 of the training split's count model on rows with 1,000 training pairs or more
    steps = summary["global_step"]
    assert steps == 200 and summary["epochs"] == pytest.approx(200 / 45, abs=0.01)
    assert 0 <= summary["train_gap"] <= 0.003
    last = torch.load(summary["last_ckpt"], weights_only=True)
    dm = WordFileDataModule(path=str(tmp_path / "data" / "names.txt"), cache_dir=str(tmp_path / "data" / "cache"))
    dm.setup("fit")
    N = dm.counts["train"]
    rows = N.sum(1) >= 1000
    P = N.double() / N.sum(1, keepdim=True)
    assert (last["state_dict"]["W"].double().softmax(1) - P)[rows].abs().max() <= 0.02
    samples = [line for line in proc.stdout.splitlines() if " samples: " in line]
    epochs = ["epoch 1", "epoch 2", "epoch 3", "epoch 4", "epoch 4.44"]  # (the last: where step 200 ends the run)
    assert [line.split(" samples: ")[0] for line in samples] == epochs
    # stdout is a pipe: a plain line of losses per validation (every 25 steps), no progress bar's carriage returns
    losses = [line for line in proc.stdout.splitlines() if line.startswith("step ")]
    assert [line.split(" (")[0] for line in losses] == [f"step {n}" for n in range(25, 201, 25)]
    assert losses[0].startswith("step 25 (epoch 0.56): train NLL") and "(count model" in losses[0]
    assert "\r" not in proc.stdout and "\x1b" not in proc.stdout
    assert abs(summary["val_loss"] - summary["val_count_nll"]) <= 0.01
    assert abs(summary["test_loss"] - summary["test_count_nll"]) <= 0.01
    wandb_files = list(Path(summary["wandb_dir"]).glob(f"run-{summary['wandb_id']}.wandb"))
    assert wandb_files and "wandb sync" in proc.stdout
    # no wall of warnings at start-up: the ones that do not apply to this project are silenced
    assert [line for line in proc.stderr.splitlines() if "warn" in line.lower()] == []

    resumed = train_py(tmp_path, "--ckpt_path", "last", "--max_epochs", "12")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = summary_of(resumed, tmp_path)
    assert after["global_step"] == 45 * 12 and after["epochs"] == 12  # all 12 epochs: the user asked for them
    assert after["wandb_id"] == summary["wandb_id"] and after["run_dir"] == summary["run_dir"]


def test_quiet_run_prints_the_result_only(tmp_path):
    from conftest import WORDS

    (tmp_path / "words.txt").write_text(WORDS)
    proc = train_py(tmp_path, "--quiet", "--data.path", "words.txt", "--max_epochs", "2")
    assert proc.returncode == 0 and proc.stderr == ""
    lines = proc.stdout.strip().splitlines()
    assert lines[0].split() == ["net", "count", "model", "(+1)"] and lines[-1].startswith("summary: ")
    # the table (4), the gaps (and, 2 epochs on 600 words being far from done, a hint), the checkpoints (2), W&B,
    # the pictures, the summary
    assert lines[4].startswith("gaps: ") and [line for line in lines if line.startswith("hint: ")] == lines[5:-5]
    assert len(lines) - len(lines[5:-5]) == 10
    # it wrote inside its run directory and the data cache only (HOME is tmp_path here); matplotlib, imported
    # by torchmetrics, keeps its font list in ~/.cache/matplotlib
    written = {p.relative_to(tmp_path).parts[:2] for p in tmp_path.rglob("*") if p.is_file()}
    (run,) = (tmp_path / "runs").iterdir()
    assert written <= {("words.txt",), ("runs", run.name), ("data", "cache"), (".cache", "matplotlib")}, written


def test_bad_input_exits_non_zero_with_one_line(tmp_path):
    proc = train_py(tmp_path, "--data.path", "missing.txt", "--max_epochs", "1")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: data file missing.txt not found")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_closed_stdout_stops_the_run_as_sigpipe_would(tmp_path):
    """`python train.py | head`: once the reader has gone, the next print stops the run with one line on stderr and
    exit code 141 (128 + SIGPIPE), no traceback; --ckpt_path last then finishes it."""
    from conftest import WORDS

    (tmp_path / "words.txt").write_text(WORDS)
    args = [sys.executable, str(REPO / "train.py"), "--data.path", "words.txt", "--logger", "none", "--max_epochs", "2"]
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line
    try:
        proc = subprocess.run(args, cwd=tmp_path, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write_end)
    assert proc.returncode == 141 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("interrupted at step ") and line.endswith("resume with python train.py --ckpt_path last")
    resumed = train_py(tmp_path, "--ckpt_path", "last", "--logger", "none")
    assert resumed.returncode == 0 and resumed.stdout.strip().splitlines()[-1].startswith("summary: ")


def test_ctrl_c_while_starting_leaves_no_run_and_no_traceback(tmp_path):
    """Ctrl-C while W&B starts (here: waiting on a server that accepts connections and never answers) undoes the
    run's set-up: exit code 130, one line, no run directory."""
    import signal
    import time

    from conftest import WORDS

    (tmp_path / "words.txt").write_text(WORDS)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    env = {**os.environ, "HOME": str(tmp_path), "WANDB_API_KEY": "x" * 40}
    env["WANDB_BASE_URL"] = f"http://127.0.0.1:{server.getsockname()[1]}"
    args = [sys.executable, str(REPO / "train.py"), "--data.path", "words.txt", "--wandb.mode", "online"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob("runs/*/config.yaml")) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)  # the probe of the server waits 3 s: the signal lands inside it
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        server.close()
    assert proc.returncode == 130 and "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1] == "interrupted while starting: nothing was trained"
    assert list((tmp_path / "runs").iterdir()) == []


@pytest.mark.parametrize("after", [0.05, 0.3, 0.8, 1.5, 2.5])
def test_ctrl_c_during_the_imports_is_one_line_and_exit_130(tmp_path, after):
    """Ctrl-C from train.py's first statement on: during the imports of torch, Lightning and W&B (the first seconds
    of every run) it ends in at most one line, exit code 130, no traceback, and no run directory."""
    import signal
    import time

    env = {**os.environ, "HOME": str(tmp_path)}
    args = [sys.executable, str(REPO / "train.py"), "--data.path", "missing.txt"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(after)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    if proc.returncode == 2:  # (the imports were done: the data file was found missing first, in one line)
        assert err.startswith("error: data file missing.txt not found") and err.count("\n") == 1
        return
    assert proc.returncode == 130 and "Traceback" not in err, err[-3000:]
    assert err.count("\n") <= 1 and out == ""
    assert not (tmp_path / "runs").exists()


def test_help_is_whole_through_a_pipe(tmp_path, capsys, monkeypatch):
    """--help's every line reaches the pipe, and ends as in-process."""
    from bigram_lightning.run.main import main

    monkeypatch.setenv("COLUMNS", "100")
    proc = train_py(tmp_path, "--help", env={"COLUMNS": "100"})
    with pytest.raises(SystemExit):
        main(["--help"])
    # (the same ending: in-process, the list of known callbacks also names the test modules' own)
    lines, expected = proc.stdout.splitlines(), capsys.readouterr().out.splitlines()
    assert proc.returncode == 0 and len(lines) > 200 and lines[0] == expected[0] and lines[-4:] == expected[-4:]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_run(tmp_path, names_txt):
    (tmp_path / "data").mkdir()
    shutil.copy(names_txt, tmp_path / "data" / "names.txt")
    proc = train_py(tmp_path, "--accelerator", "gpu", "--max_epochs", "3", "--logger", "csv")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = summary_of(proc, tmp_path)
    assert abs(summary["val_loss"] - summary["val_count_nll"]) <= 0.02


RECORDER = """
import lightning as L
import torch

from bigram_lightning.datafile import WordFileDataModule



class RecordPairs(L.Callback):
    \"\"\"Saves every (x, y) pair this rank trained on, per epoch, as x * V + y.\"\"\"

    def __init__(self, out: str = "."):
        self.out, self.pairs = out, []

    def on_train_epoch_start(self, trainer, pl_module):
        self.pairs.append([])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        xenc, ys, n_step = batch  # (the one-hot rows: their characters are the ones' columns)
        self.pairs[-1].append(xenc.argmax(1) * len(pl_module.W) + ys)

    def on_train_end(self, trainer, pl_module):
        torch.save([torch.cat(p) for p in self.pairs], f"{self.out}/pairs-rank{trainer.global_rank}.pt")
"""


def uneven_words(tmp_path: Path) -> tuple[int, torch.Tensor]:
    """Writes words.txt with an odd number of training pairs, so that the two ranks' shares of the last global
    batch differ; returns a per-device batch size and the training split's pairs (x * V + y, sorted)."""
    from bigram_lightning.datafile import WordFileDataModule
    from bigram_lightning.download import census_first_names

    for k in range(1000, 1100):
        (tmp_path / "words.txt").write_text("\n".join(census_first_names()[:k]) + "\n")
        dm = WordFileDataModule(path=str(tmp_path / "words.txt"), cache_dir=str(tmp_path / "data" / "cache"))
        dm.setup("fit")
        if dm.num_pairs("train") % 2 == 1:
            stream = dm.streams["train"].long()
            return 128, (stream[:-1] * len(dm.vocab) + stream[1:]).sort().values
    raise AssertionError("no word count gives an odd number of training pairs")


DDP_ARGS = [
    "--accelerator",
    "cpu",
    "--strategy",
    "ddp",
    "--data.path",
    "words.txt",
    "--max_epochs",
    "2",
    "--logger",
    "csv",
    "--trainer.enable_progress_bar",
    "false",
    "--precision",
    "64-true",
    "--samples.num",
    "3",
]


def one_process_W(tmp_path: Path, batch_size: int) -> torch.Tensor:
    """W after the same run in one process (in this one), with the two devices' batches as one."""
    from bigram_lightning.run.main import main

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        args = [a for a in DDP_ARGS if a not in ("--strategy", "ddp")]
        assert main([*args, "--devices", "1", "--data.batch_size", str(batch_size), "--runs_dir", "runs-1"]) == 0
    finally:
        os.chdir(cwd)
    (last,) = (tmp_path / "runs-1").glob("*/checkpoints/last.ckpt")
    return torch.load(last, weights_only=True)["state_dict"]["W"]


def test_ddp_on_two_cpu_processes_matches_one_process(tmp_path):
    """Lightning's DDP on 2 processes, each with half the batch, ends with the W of 1 process with the whole
    batch, also when the last batch splits unevenly; the ranks' shards are disjoint and complete."""
    (tmp_path / "recorder.py").write_text(RECORDER)
    batch, train_pairs = uneven_words(tmp_path)
    proc = train_py(
        tmp_path,
        *DDP_ARGS,
        "--devices",
        "2",
        "--data.batch_size",
        str(batch),
        "--trainer.callbacks+=recorder.RecordPairs",
        f"--trainer.callbacks.out={tmp_path}",
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = summary_of(proc, tmp_path)
    # one run directory for both processes, samples printed by rank 0 only
    assert len(list((tmp_path / "runs").iterdir())) == 1
    assert sum(line.startswith("epoch 1 samples:") for line in proc.stdout.splitlines()) == 1
    assert summary["val_loss"] < 3.0
    # every epoch, the two ranks together trained on each pair of the split exactly once
    rank0, rank1 = (torch.load(tmp_path / f"pairs-rank{r}.pt") for r in (0, 1))
    assert len(rank0) == len(rank1) == 2
    for a, b in zip(rank0, rank1):
        assert abs(len(a) - len(b)) <= 1
        assert torch.equal(torch.cat([a, b]).sort().values, train_pairs)
    W_ddp = torch.load(summary["last_ckpt"], weights_only=True)["state_dict"]["W"]
    assert (W_ddp - one_process_W(tmp_path, 2 * batch)).abs().max().item() <= 1e-5


def test_two_nodes_under_torchrun_match_one_process(tmp_path):
    """Two "nodes" (torchrun --nnodes 2, node ranks 0 and 1, one process each) on loopback reach the W of one
    process with both nodes' batches as one."""
    batch, _ = uneven_words(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["HOME"] = str(tmp_path)
    nodes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--nproc-per-node",
                "1",
                "--node-rank",
                str(rank),
                "--master-addr",
                "127.0.0.1",
                "--master-port",
                str(port),
                "--rdzv-id",
                "two-nodes",
                str(REPO / "train.py"),
                *DDP_ARGS,
                "--num_nodes",
                "2",
                "--devices",
                "1",
                "--data.batch_size",
                str(batch),
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        for rank in (0, 1)
    ]
    outs = [node.communicate(timeout=300) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outs[0][1][-3000:] + outs[1][1][-3000:]
    # both nodes agreed on one run directory, named after the rendezvous id
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["torchrun-two-nodes"]
    W = torch.load(tmp_path / "runs" / "torchrun-two-nodes" / "checkpoints" / "last.ckpt", weights_only=True)
    assert (W["state_dict"]["W"] - one_process_W(tmp_path, 2 * batch)).abs().max().item() <= 1e-5


def test_a_built_wheel_trains_from_any_directory(tmp_path):
    """`pip install` of a wheel (not the checkout): bigram-train runs elsewhere with the configs it ships. The fresh
    environment borrows this one's dependencies through a .pth file, so that nothing is downloaded."""
    pytest.importorskip("setuptools")  # (the wheel is built without build isolation: offline)
    source = tmp_path / "source"  # (building writes build/ into the tree it builds)
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".*", "runs", "data", "wandb", "build", "dist"))
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", "dist", str(source)]
    subprocess.run(build, cwd=tmp_path, check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "venv", "env"], cwd=tmp_path, check=True)
    bin_dir = tmp_path / "env" / ("Scripts" if os.name == "nt" else "bin")
    site = subprocess.run(
        [bin_dir / "python", "-c", "import site; print(site.getsitepackages()[0])"],
        text=True,
        capture_output=True,
        check=True,
    ).stdout.strip()
    deps = [p for p in sys.path if p.endswith("site-packages")]
    Path(site, "deps.pth").write_text("\n".join(deps) + "\n")
    wheel = next((tmp_path / "dist").glob("bigram_lightning-*.whl"))
    subprocess.run(
        [bin_dir / "python", "-m", "pip", "install", "-q", "--no-deps", wheel], check=True, capture_output=True
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "words.txt").write_text("\n".join(["emma", "olivia", "ava", "isabella", "sophia"] * 40) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | {"HOME": str(elsewhere)}
    args = ["--config", "smoke", "--data.path", "words.txt", "--max_epochs", "1", "--quiet"]
    proc = subprocess.run(
        [bin_dir / "bigram-train", *args], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = summary_of(proc, elsewhere)
    assert summary["epochs"] == 1 and Path(summary["last_ckpt"]).is_file()
    where = [bin_dir / "python", "-c", "import bigram_lightning.run.cli as c; print(c.__file__, c.CONFIGS)"]
    module, configs = subprocess.run(where, cwd=elsewhere, env=env, capture_output=True, text=True).stdout.split()
    assert Path(module).is_relative_to(tmp_path / "env") and Path(configs, "gpu.yaml").is_file()
