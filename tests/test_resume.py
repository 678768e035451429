"""Exact resume: a run stopped at any point and resumed with `--ckpt_path last` ends bitwise equal to the same run
uninterrupted (W, optimizer, scheduler, loops, callbacks, logged losses), and checkpoints survive a kill."""

import contextlib
import csv
import errno
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import assert_loads_without_a_trainer

from bigram_lightning.core.batches import BatchIndexSampler
from bigram_lightning.core.model import BigramLM
from bigram_lightning.datafile import WordFileDataModule
from bigram_lightning.run.checkpoint_io import AtomicCheckpointIO
from bigram_lightning.run.errors import UserError
from bigram_lightning.run.main import main
from bigram_lightning.run.runs import find_checkpoint

REPO = Path(__file__).resolve().parents[1]
BATCH = 128
# all 4 epochs (early stopping has its own case), validated at each epoch's end, as the cases below are built
ARGS = [
    "--trainer.val_check_interval",
    "1.0",
    "--data.path",
    "words.txt",
    "--data.batch_size",
    str(BATCH),
    "--samples.num",
    "2",
    "--early_stopping",
    "false",
    "--max_epochs",
    "4",
]
# the default length (up to 200 steps) and early stopping, on validations at epochs' ends
EARLY = ["--early_stopping", "true", "--max_epochs", "null"]
COUNTS = ["--data.mode", "counts", "--data.steps_per_epoch", "10", "--precision", "64-true"]


class Killed(Exception):
    """Stands for a kill: raised before a training step, so everything up to it was logged and saved."""


def steps_per_epoch(words_file: Path) -> int:
    dm = WordFileDataModule(path=str(words_file), cache_dir=str(words_file.parent / "data" / "cache"))
    dm.setup("fit")
    return math.ceil(dm.num_pairs("train") / BATCH)


def the_run(runs_dir: str) -> Path:
    (run,) = Path(runs_dir).iterdir()
    return run


def ckpt(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)


def metrics(path: Path) -> list[dict]:
    """metrics.csv's rows without their empty cells (a resumed run's file starts again, with its own columns)."""
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def normal(x):
    """A checkpoint with its paths cut to what follows the run directory (the runs compared live in different
    directories), and without the W&B run id and the data file's absolute path (each run has its own)."""
    if isinstance(x, dict):
        skip = ("pytorch-lightning_version", "WandbRun", "data_abspath")
        return {normal(k): normal(v) for k, v in x.items() if k not in skip}
    if isinstance(x, (list, tuple)):
        return [normal(v) for v in x]
    if isinstance(x, str) and "/checkpoints" in x:
        return "checkpoints" + x.split("/checkpoints", 1)[1]
    return x


def assert_same_state(a, b, where="checkpoint"):
    """Every tensor bitwise equal (and of the same dtype), every other value equal."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            assert_same_state(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted runs, one per mode: {mode: (last.ckpt, metrics rows)}."""
    from conftest import QUIET, WORDS

    root = tmp_path_factory.mktemp("reference")
    (root / "words.txt").write_text(WORDS)
    cwd, out = os.getcwd(), {}
    os.chdir(root)
    try:
        for mode, extra in (("pairs", []), ("counts", COUNTS), ("early", EARLY)):
            assert main([*QUIET, *ARGS, *extra, "--runs_dir", mode]) == 0
            run = the_run(mode)
            out[mode] = (ckpt(run), metrics(run / "metrics.csv"))
    finally:
        os.chdir(cwd)
    return out


@contextlib.contextmanager
def killed_before_step(monkeypatch, step: int):
    """Training inside stops (Killed) just before global step `step`, after everything before it was saved."""

    def on_train_batch_start(self, batch, batch_idx):
        if self.trainer.global_step == step:
            raise Killed(step)

    with monkeypatch.context() as m, pytest.raises(Killed):
        m.setattr(BigramLM, "on_train_batch_start", on_train_batch_start)
        yield


def stop_and_resume(train, monkeypatch, workdir, kill_at: int, *args: str) -> tuple[Path, list[dict], str]:
    """Train with `args`, stopped just before step `kill_at`, then `--ckpt_path last`; returns the run, the two
    parts' metrics rows joined, and the resumed run's stderr."""
    with killed_before_step(monkeypatch, kill_at):
        train(*ARGS, *args)
    run = the_run("runs")
    rows = metrics(run / "metrics.csv") if (run / "metrics.csv").exists() else []
    code, _, err, _ = train("--ckpt_path", "last")
    assert code == 0, err
    return run, rows + metrics(run / "metrics.csv"), err


def assert_same_run(run: Path, rows: list[dict], reference) -> None:
    ref_ckpt, ref_rows = reference
    got = ckpt(run)
    assert torch.equal(got["state_dict"]["W"], ref_ckpt["state_dict"]["W"])
    # the whole checkpoint: optimizer momentum, LR scheduler, loop counters and the loader's position, callbacks
    # (best.ckpt's score, the samples, the loss history), the epoch's running sums
    assert_same_state(normal(got), normal(ref_ckpt))
    assert [r for r in rows if "test/loss" not in r] == [r for r in ref_rows if "test/loss" not in r]


@pytest.mark.slow
def test_a_sigterm_after_the_steps_checkpoint_hook_still_saves_that_step(
    workdir, words_file, train, reference, monkeypatch
):
    """A SIGTERM can land after last.ckpt's hook ran for a step (here: in the model's hook, which Lightning calls
    after the callbacks'); Lightning then stops at that step's end. The step is saved on the way out, and the
    resumed run ends as the uninterrupted one."""
    S = steps_per_epoch(words_file)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.trainer.global_step == S + 5:
            os.kill(os.getpid(), signal.SIGTERM)

    with monkeypatch.context() as m:
        m.setattr(BigramLM, "on_train_batch_end", on_train_batch_end)
        code, _, err, _ = train(*ARGS)
    run = the_run("runs")
    assert code == 128 + signal.SIGTERM and ckpt(run)["global_step"] == S + 5, err
    rows = metrics(run / "metrics.csv")
    code, _, err, _ = train("--ckpt_path", "last")
    assert code == 0, err
    assert_same_run(run, rows + metrics(run / "metrics.csv"), reference["pairs"])


@pytest.mark.slow
def test_resume_at_an_epoch_end_is_exact(workdir, words_file, train, reference):
    """2 epochs, then `--ckpt_path last --max_epochs 4`: the same W, optimizer state and logged losses as 4."""
    code, _, err, _ = train(*ARGS[:-1], "2")
    assert code == 0, err
    run = the_run("runs")
    rows = [r for r in metrics(run / "metrics.csv") if "test/loss" not in r]
    code, _, err, _ = train("--ckpt_path", "last", "--max_epochs", "4")
    assert code == 0, err
    ref_ckpt = reference["pairs"][0]
    assert_same_state(ckpt(run)["optimizer_states"], ref_ckpt["optimizer_states"], "Adam's moments")
    assert_same_run(run, rows + metrics(run / "metrics.csv"), reference["pairs"])


@pytest.mark.parametrize("case", ["mid-epoch", "before-last-batch", "epoch-end", "counts-64-true", "early"])
@pytest.mark.slow
def test_resume_from_a_mid_epoch_checkpoint_is_exact(workdir, words_file, train, reference, monkeypatch, case):
    """--checkpoint_every_n_steps N, stopped right after a checkpoint, then `--ckpt_path last`: bitwise the
    uninterrupted run. mid-epoch: in epoch 1, after the LR decayed once; before-last-batch: one batch of the
    epoch left; epoch-end: N divides the epoch, whose last step is saved at its end (after validation);
    counts-64-true: counts mode in float64, mid-epoch (W is not rounded through float32 on loading); early:
    mid-epoch with early stopping, which ends the uninterrupted run before its 200 steps."""
    S = steps_per_epoch(words_file)
    n, kill_at, extra = {
        "mid-epoch": (5, 5 * (S // 5 + 2), []),
        "before-last-batch": (2 * S - 1, 2 * S - 1, []),
        "epoch-end": (S, S, []),
        "counts-64-true": (3, 15, COUNTS),
        "early": (5, 5 * (S // 5 + 2), EARLY),
    }[case]
    assert kill_at % S != 0 or case == "epoch-end"
    run, rows, _ = stop_and_resume(train, monkeypatch, workdir, kill_at, *extra, "--checkpoint_every_n_steps", str(n))
    mode = case if case == "early" else "counts" if case.startswith("counts") else "pairs"
    assert mode != "early" or 2 <= reference["early"][0]["epoch"] < 11  # (stopped early, after the kill)
    assert_same_run(run, rows, reference[mode])


@pytest.mark.slow
def test_epoch_end_checkpoint_comes_after_validation(workdir, words_file, train, monkeypatch):
    """With N dividing the epoch, the checkpoint of an epoch's last step is the epoch-end one: it has this
    epoch's validation (Pictures' history row) and a zero running sum."""
    S = steps_per_epoch(words_file)
    with killed_before_step(monkeypatch, S + 1):
        train(*ARGS, "--checkpoint_every_n_steps", str(S))
    c = ckpt(the_run("runs"))
    assert c["global_step"] == S and [r["epoch"] for r in c["callbacks"]["LossHistory"]["history"]] == [0, 1]
    assert c["train_sums"].tolist() == [[0, 0]] and c["loops"]["fit_loop"]["epoch_progress"]["total"]["completed"] == 0


@pytest.mark.slow
def test_last_restarts_a_run_stopped_before_its_first_checkpoint(workdir, words_file, train, reference, monkeypatch):
    """The newest run has config.yaml but no last.ckpt: `--ckpt_path last` trains it again in its directory
    (not an older run), from the start, with a note; the end is the uninterrupted run's."""
    code, _, err, older = train(*ARGS[:-1], "1", "--runs_dir", "runs")
    assert code == 0, err
    time.sleep(0.05)  # distinct modification times
    with killed_before_step(monkeypatch, 0):
        train(*ARGS, "--runs_dir", "runs")
    (killed,) = [p for p in Path("runs").iterdir() if str(p.resolve()) != older["run_dir"]]
    assert not (killed / "checkpoints" / "last.ckpt").exists()
    code, _, err, summary = train("--ckpt_path", "last")
    assert code == 0, err
    assert f"note: {killed} was stopped before its first checkpoint" in err
    assert summary["run_dir"] == str(killed.resolve()) and summary["epochs"] == 4
    assert torch.equal(ckpt(killed)["state_dict"]["W"], reference["pairs"][0]["state_dict"]["W"])
    assert ckpt(Path(older["run_dir"]))["epoch"] == 0  # the older run is untouched


def test_last_refuses_a_run_stopped_before_its_config(workdir, words_file, train):
    code, _, _, _ = train(*ARGS[:-1], "1")
    assert code == 0
    time.sleep(0.05)
    (Path("runs") / "20991231-000000").mkdir()
    (Path("runs") / "20991231-000000" / "run.json").write_text('{"wandb_id": "abcd1234"}\n')
    code, _, err, _ = train("--ckpt_path", "last")
    assert code == 2 and "the newest run, runs/20991231-000000, was stopped while starting" in err


@pytest.mark.parametrize("world_size", [1, 2])
def test_sampler_resumes_with_the_next_batch_on_every_rank(world_size):
    """Each rank's sampler, stopped after k batches of epoch 1 and rebuilt from its state_dict, hands out the
    epoch's remaining batches; a state from an earlier epoch resumes nothing."""
    for rank in range(world_size):
        whole = BatchIndexSampler(1001, 50, shuffle=True, seed=5, rank=rank, world_size=world_size)
        whole.set_epoch(1)
        expected = [idx.tolist() for idx, _ in whole]
        for k in (0, 1, len(expected) - 1, len(expected)):
            s = BatchIndexSampler(1001, 50, shuffle=True, seed=5, rank=rank, world_size=world_size)
            s.set_epoch(1)
            it = iter(s)
            first = [next(it)[0].tolist() for _ in range(k)]
            state = s.state_dict()
            assert state == {"epoch": 1, "batches": k} and all(type(v) is int for v in state.values())
            resumed = BatchIndexSampler(1001, 50, shuffle=True, seed=5, rank=rank, world_size=world_size)
            resumed.load_state_dict(state)
            resumed.set_epoch(1)
            assert first + [idx.tolist() for idx, _ in resumed] == expected
            resumed.load_state_dict(state)
            resumed.set_epoch(2)  # a checkpoint of an epoch's end: the next epoch is whole
            assert len(list(resumed)) == len(expected)
    counts = BatchIndexSampler(10, 1, shuffle=False, seed=0)  # counts mode: the same batch, 10 steps an epoch
    counts.load_state_dict({"epoch": 0, "batches": 7})
    assert len(list(counts)) == 3 and counts.state_dict() == {"epoch": 0, "batches": 10}


def test_checkpoint_io_writes_whole_or_not_at_all(tmp_path):
    """A process that dies in the middle of a save (its temporary file half written) or fails during it leaves
    the previous last.ckpt, loadable with weights_only; what a dead process leaves behind is a hidden .tmp file
    that `--ckpt_path last` never picks up, and the next save removes."""
    io = AtomicCheckpointIO()
    path = tmp_path / "runs" / "r" / "checkpoints" / "last.ckpt"
    old = {"state_dict": {"W": torch.randn(27, 27)}, "global_step": 3}
    io.save_checkpoint(old, path)
    new = {"state_dict": {"W": torch.randn(27, 27)}, "global_step": 6}

    pid = os.fork()
    if pid == 0:  # the child: killed mid-write, after half the bytes reached the temporary file
        try:

            def die(fd):
                os.ftruncate(fd, os.fstat(fd).st_size // 2)
                os._exit(9)

            os.fsync = die
            io.save_checkpoint(new, path)
        finally:
            os._exit(1)  # not reached: the save must die in fsync
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 9
    assert_same_state(io.load_checkpoint(path), old)
    assert_same_state(torch.load(path, weights_only=True), old)
    leftovers = [p.name for p in path.parent.iterdir() if p != path]
    assert len(leftovers) == 1 and leftovers[0].startswith(".last.ckpt.") and leftovers[0].endswith(".tmp")
    assert find_checkpoint("last", str(tmp_path / "runs")) == path

    # a save that fails (disk full, say) removes its temporary file and leaves the old checkpoint too
    def full(*_):
        raise OSError(28, "No space left on device")

    real_fsync = os.fsync
    os.fsync = full
    try:
        with pytest.raises(UserError, match=r"cannot write .*last.ckpt \(No space left on device\)"):
            io.save_checkpoint(new, path)
    finally:
        os.fsync = real_fsync
    assert len(list(path.parent.iterdir())) == 2
    assert_same_state(io.load_checkpoint(path), old)
    io.save_checkpoint(new, path)
    assert_same_state(io.load_checkpoint(path), new)
    assert list(path.parent.iterdir()) == [path]


@pytest.mark.slow
def test_ddp_resume_mid_epoch_is_exact(workdir, words_file):
    """Lightning's DDP on 2 CPU processes, stopped mid-epoch 1 (--trainer.max_steps, just after a checkpoint)
    and resumed: each rank goes on with its own next batch and its own running sums, so W and every loss logged
    after the stop are the uninterrupted DDP run's, bitwise."""
    from test_train_script import DDP_ARGS, summary_of, train_py

    S, stop = steps_per_epoch(words_file), 35  # 2 devices × 64 pairs a step: BATCH pairs, as in one process
    args = [*DDP_ARGS, "--devices", "2", "--data.batch_size", "64", "--checkpoint_every_n_steps", "5"]
    assert S < stop < 2 * S - 1 and stop % 5 == 0
    ref = train_py(workdir, *args, "--runs_dir", "ref")
    assert ref.returncode == 0, ref.stderr[-3000:]
    ref = summary_of(ref, workdir)
    stopped = train_py(workdir, *args, "--trainer.max_steps", str(stop))
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    run = the_run("runs")
    assert ckpt(run)["global_step"] == stop and ckpt(run)["train_sums"].shape == (2, 2)
    resumed = train_py(workdir, "--ckpt_path", "last", "--trainer.max_steps", "-1")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    W, W_ref = ckpt(run)["state_dict"]["W"], ckpt(Path(ref["run_dir"]))["state_dict"]["W"]
    print(f"\nDDP, resumed at step {stop}: max |ΔW| {(W - W_ref).abs().max().item()}")
    assert torch.equal(W, W_ref)
    rows = metrics(run / "metrics.csv")
    assert rows == [r for r in metrics(Path(ref["run_dir"]) / "metrics.csv") if int(r["step"]) >= stop]
    assert any("train/loss_epoch" in r for r in rows)
    for path in (run / "checkpoints" / "best.ckpt", run / "checkpoints" / "last.ckpt"):  # 2 devices, resumed
        assert_loads_without_a_trainer(path)


SLOW = '''
import time
import lightning as L


class Slow(L.Callback):
    """20 ms a step and 0.3 s before each epoch (just after the epoch-end checkpoint), so that the test sees each
    checkpoint well before the next one replaces it. No effect on what is trained."""

    def on_train_batch_end(self, *args):
        time.sleep(0.02)

    def on_train_epoch_start(self, *args):
        time.sleep(0.3)
'''


@pytest.mark.slow
def test_sigkill_at_any_point_then_resume_ends_bitwise_equal(workdir, words_file, reference):
    """The real `python train.py --checkpoint_every_n_steps 4`, killed with SIGKILL four times (before its first
    checkpoint, just after its first one, mid-epoch 1, just after epoch 1's end) and each time resumed with
    `--ckpt_path last`, ends with the W of the uninterrupted run, bitwise."""
    S = steps_per_epoch(words_file)
    (workdir / "slow.py").write_text(SLOW)
    # as tests/test_train_script.py's train_py: no W&B variables, no credentials in HOME
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(workdir), PYTHONPATH=str(workdir))
    cmd = [sys.executable, str(REPO / "train.py")]
    first = [*ARGS, "--checkpoint_every_n_steps", "4", "--logger", "csv", "--quiet", "--trainer.callbacks+=slow.Slow"]
    last = workdir / "runs"

    def saved_step() -> int | None:
        paths = list(last.glob("*/checkpoints/last.ckpt"))
        if not paths:
            return None
        try:
            return torch.load(paths[0], weights_only=True)["global_step"]
        except FileNotFoundError:
            return None

    def configs() -> int:
        return len(list(last.glob("*/config.yaml")))

    # (what to wait for before the kill, as a test of the process's progress)
    kills = [
        ("before the first checkpoint", first, lambda start: configs() == 1 and saved_step() is None),
        ("just after the first checkpoint", ["--ckpt_path", "last"], lambda start: saved_step() is not None),
        ("mid-epoch 1", ["--ckpt_path", "last"], lambda start: (saved_step() or 0) > S + S // 2),
        ("just after epoch 1's end", ["--ckpt_path", "last"], lambda start: saved_step() == 2 * S),
    ]
    hit = []
    for what, args, ready in kills:
        before = saved_step()
        proc = subprocess.Popen(
            cmd + args,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 120
            while not ready(before):
                assert proc.poll() is None, f"{what}: train.py ended before the kill: {proc.stderr.read()[-3000:]}"
                assert time.monotonic() < deadline, f"{what}: never reached"
                time.sleep(0.002)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL
        hit.append((what, saved_step()))
    done = subprocess.run(
        cmd + ["--ckpt_path", "last"],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    W = ckpt(the_run("runs"))["state_dict"]["W"]
    ref = reference["pairs"][0]["state_dict"]["W"]
    print(f"\nkills (point, last.ckpt's global_step after it; {S} steps an epoch): {hit}")
    print(f"max |ΔW| after {len(hit)} SIGKILLs and resumes: {(W - ref).abs().max().item()}")
    assert torch.equal(W, ref)
    assert hit[0][1] is None and hit[-1][1] == 2 * S
    assert not list(the_run("runs").glob("checkpoints/.last.ckpt.*"))  # no temporary file outlives a save


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_after_training_leaves_the_checkpoints_whole_and_says_how_to_finish(workdir, words_file, signum):
    """The real `python train.py`, sent a signal as the test phase starts (after training, before the report):
    exit 128 + the signal, one line naming last.ckpt and the command that finishes the run, which then does."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(workdir), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, str(REPO / "train.py"), "--data.path", "words.txt", "--logger", "csv"]
    proc = subprocess.Popen(
        [*cmd, "--max_epochs", "2"],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        err = []
        for line in proc.stderr:  # Lightning's line as the test phase loads best.ckpt
            err.append(line)
            if line.startswith("Restoring states from the checkpoint path"):
                proc.send_signal(signum)
                break
        err += proc.communicate(timeout=120)[1].splitlines(keepends=True)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signum, "".join(err[-30:])
    step = ckpt(the_run("runs"))["global_step"]
    assert err[-1].strip() == (
        f"interrupted at step {step} (epoch 2): {the_run('runs')}/checkpoints/last.ckpt holds step {step}: "
        "resume with python train.py --ckpt_path last"
    )
    assert not (the_run("runs") / "summary.json").exists() and not list(workdir.rglob("*.tmp"))
    done = subprocess.run(
        [*cmd, "--ckpt_path", "last"],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and (the_run("runs") / "summary.json").is_file(), done.stderr[-3000:]
    assert ckpt(the_run("runs"))["global_step"] == step  # finished, not trained further


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_in_the_test_phase_survives_a_library_that_swallows_exceptions(workdir, words_file, train, signum):
    """A signal that lands in the test phase inside a library's bare `except:` (fsspec's exists() once swallowed a
    Ctrl-C there, and the test then failed with 'best.ckpt not found') still stops the run: it is noted, not raised
    in the handler, and acted on after the test."""
    load = AtomicCheckpointIO.load_checkpoint

    def swallowing_load(self, *args, **kwargs):
        try:  # (as a library does)
            os.kill(os.getpid(), signum)
            time.sleep(0.05)
        except BaseException:
            pass
        return load(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(AtomicCheckpointIO, "load_checkpoint", swallowing_load)
        code, _, err, summary = train(*ARGS[:-1], "1")
    assert code == 128 + signum and summary is None, err
    assert err.strip().splitlines()[-1].startswith("interrupted at step "), err


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_saves_the_step_says_how_to_resume_and_resume_ends_bitwise_equal(
    workdir, words_file, reference, signum
):
    """The real `python train.py --quiet`, sent SIGTERM (SLURM, kill, a CI timeout) or SIGINT (Ctrl-C) mid-epoch 1:
    last.ckpt holds the step it stopped at, one line says so and how to resume, the exit code is 128 + the signal
    (143, 130); `--ckpt_path last` then ends with the uninterrupted run's W, bitwise."""
    S = steps_per_epoch(words_file)
    (workdir / "slow.py").write_text(SLOW)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(workdir), PYTHONPATH=str(workdir))
    cmd = [sys.executable, str(REPO / "train.py")]
    args = [*ARGS, "--logger", "csv", "--quiet", "--trainer.callbacks+=slow.Slow"]
    proc = subprocess.Popen(
        cmd + args,
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(workdir.glob("runs/*/checkpoints/last.ckpt")):  # epoch 0 is over
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-3000:]
            time.sleep(0.01)
        time.sleep(0.3 + 0.02 * S / 2)  # into epoch 1's steps
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signum, err[-3000:]
    line = err.strip().splitlines()[-1]
    step = ckpt(the_run("runs"))["global_step"]
    assert line.startswith("interrupted at step ") and line.endswith(": resume with python train.py --ckpt_path last")
    assert f"holds step {step}" in line and S < step < 2 * S, line
    done = subprocess.run(
        cmd + ["--ckpt_path", "last"],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert torch.equal(ckpt(the_run("runs"))["state_dict"]["W"], reference["pairs"][0]["state_dict"]["W"])


def test_a_full_disk_ends_in_one_line_and_leaves_the_checkpoints_whole(workdir, words_file, train, monkeypatch):
    """No space left when epoch 1's checkpoints are written: one `error:` line naming the file, exit code 2, no
    traceback; epoch 0's last.ckpt stays whole, and resumes once there is room again."""
    from bigram_lightning.run import files

    assert train(*ARGS[:-1], "1")[0] == 0
    run = the_run("runs")
    fsync = files.os.fsync

    def full(fd):  # the checkpoints' file system is full (Linux: a descriptor's path is in /proc/self/fd)
        if "/checkpoints/" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return fsync(fd)

    with monkeypatch.context() as m:
        m.setattr(files.os, "fsync", full)
        code, out, err, summary = train("--ckpt_path", "last", "--max_epochs", "2")
    assert code == 2 and summary is None and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("error: cannot write ") and f"{run}/checkpoints/" in line
    assert "(No space left on device)" in line and "what was written before is whole" in line
    assert ckpt(run)["epoch"] == 0 and not list(run.glob("checkpoints/.*.tmp"))
    assert files.os.fsync is fsync
    code, _, err, summary = train("--ckpt_path", "last", "--max_epochs", "2")
    assert code == 0, err
    assert summary["epochs"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("where", ["png", "wandb"])
def test_pictures_on_a_full_disk_end_in_one_line_with_the_checkpoints_whole(workdir, words_file, train, where):
    """No space left when the pictures are written (PIL's write of the PNG, or W&B's copy of it into its media
    directory): one `error:` line naming what and where, exit code 2, no traceback; the checkpoints are whole
    and `--ckpt_path last` finishes the run once there is room."""
    from lightning.pytorch.loggers import WandbLogger
    from PIL import Image

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.MonkeyPatch.context() as m:
        m.setattr(*((Image.Image, "save") if where == "png" else (WandbLogger, "log_image")), full)
        code, out, err, summary = train(*ARGS[:-1], "1", "--logger", "wandb")
    run = the_run("runs")
    assert code == 2 and summary is None and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"error: cannot write the pictures into {run} (No space left on device)"), line
    assert f"{run}/checkpoints/last.ckpt holds step {ckpt(run)['global_step']}" in line
    code, _, err, summary = train("--ckpt_path", "last", "--logger", "wandb")
    assert code == 0 and len(summary["pictures"]) == 2, err


@pytest.mark.slow
def test_a_full_disk_under_a_writer_of_w_and_b_ends_in_one_line(workdir, words_file, train):
    """W&B writes its media files (the samples table, the charts) from this process: no space left there in epoch
    1 is one `error:` line naming the file, exit code 2, the run directory kept with epoch 0's checkpoint whole."""
    from lightning.pytorch.loggers import WandbLogger

    log_table, calls = WandbLogger.log_table, []

    def full(self, *args, **kwargs):  # epoch 0's samples table is written; epoch 1's finds the disk full
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device", "runs/X/wandb/media/table/samples.json")
        return log_table(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(WandbLogger, "log_table", full)
        code, out, err, summary = train(*ARGS[:-1], "2", "--logger", "wandb")
    run = the_run("runs")
    assert code == 2 and summary is None and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("error: cannot write runs/X/wandb/media/table/samples.json (No space left on device)")
    assert line.endswith(
        f"the checkpoints are whole: {run}/checkpoints/last.ckpt holds step {ckpt(run)['global_step']}"
    )
