"""Hostile command lines and checkpoints: each ends with exit code 2, one line that names the problem and its
fix, no traceback, and nothing half-written (no run directory, no temporary file)."""

import os
import shutil
from pathlib import Path

import pytest
import torch

from bigram_lightning.run.checkpoints import checkpoint_problem

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")


def leftovers(workdir: Path) -> list[str]:
    """Run directories and temporary files a failed command left behind."""
    runs = [str(p) for p in (workdir / "runs").glob("*")] if (workdir / "runs").exists() else []
    return runs + [str(p) for p in workdir.rglob("*.tmp")]


def assert_refused(workdir: Path, result, *words: str, runs_before: int = 0) -> str:
    code, out, err, summary = result
    lines = err.strip().splitlines()
    assert code == 2 and summary is None, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], lines[0]
    assert len(leftovers(workdir)) == runs_before, leftovers(workdir)
    return lines[0]


FLAGS = {
    "gpu-without-gpu": (["--accelerator", "gpu"], ["--accelerator gpu", "use --accelerator cpu"]),
    "devices-0": (["--devices", "0"], ["--devices 0", "number of devices >= 1"]),
    "devices-negative": (["--devices", "-3"], ["--devices -3"]),
    "no-validation": (["--trainer.limit_val_batches", "0"], ["--trainer.limit_val_batches 0 turns validation off"]),
    "max-epochs-0": (["--max_epochs", "0"], ["--max_epochs 0 trains nothing: pass 1 or more"]),
    "max-epochs-negative": (["--max_epochs", "-2"], ["--max_epochs -2 trains nothing", "-1 for no limit"]),
    "max-steps-0": (["--trainer.max_steps", "0"], ["--trainer.max_steps 0 trains nothing"]),
    "no-training": (["--trainer.limit_train_batches", "0"], ["--trainer.limit_train_batches 0 trains nothing"]),
    "val-interval-past-the-epoch": (
        ["--trainer.val_check_interval", "5"],
        ["--trainer.val_check_interval 5 exceeds the steps per epoch (1)", "--trainer.check_val_every_n_epoch null"],
    ),
    "no-overfit-batches": (["--trainer.overfit_batches", "1"], ["--trainer.overfit_batches is not supported"]),
    "seed-past-64-bits": (
        ["--seed", str(2**64)],
        ['"seed"', "does not conform to restriction v>=-9223372036854775808"],
    ),
    "runs-dir-a-file": (
        ["--runs_dir", "words.txt/runs"],
        ["--runs_dir words.txt/runs: cannot make words.txt/runs/", "(Not a directory): pass a writable directory"],
    ),
    "wandb-project-invalid": (
        ["--logger", "wandb", "--wandb.project", "a/b"],
        ["W&B refused the run: Invalid project name 'a/b'", "fix --wandb.project"],
    ),
    "wandb-tag-too-long": (["--wandb.tags", f"[ok, {'x' * 65}]"], ['"wandb.tags"', "Not of type Tag"]),
    "trainer-logger": (
        ["--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", "x"],
        ["--trainer.logger is not used: the run logs to --logger's choice (wandb, csv or none)"],
    ),
    "no-test": (["--trainer.limit_test_batches", "0"], ["--trainer.limit_test_batches 0 turns the test off"]),
    "accumulate-0": (
        ["--trainer.accumulate_grad_batches", "0"],
        ["--trainer.accumulate_grad_batches 0: pass 1 or more"],
    ),
    "validate-every-0-epochs": (
        ["--trainer.check_val_every_n_epoch", "0"],
        ["--trainer.check_val_every_n_epoch 0: pass 1 or more"],
    ),
    "distributed-sampler": (
        ["--trainer.use_distributed_sampler", "true"],
        ["--trainer.use_distributed_sampler is not supported: each step is split across devices already"],
    ),
    "a-second-best-ckpt": (
        ["--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.monitor", "val/loss"],
        ["Found more than one stateful callback of type `ModelCheckpoint`"],
    ),
    "lr-zero": (["--model.lr", "0"], ['"model.lr"', "PositiveFloat", "0 does not conform to restriction v>0"]),
    "lr-negative": (["--model.lr", "-1"], ['"model.lr"', "-1 does not conform to restriction v>0"]),
    "lr-not-a-number": (["--model.lr", "abc"], ['"model.lr"', "could not convert string to float: 'abc'"]),
    "lr-nan": (["--model.lr", "nan"], ['"model.lr"', "nan does not conform to restriction v>0"]),
    "momentum-1": (["--model.momentum", "1"], ['"model.momentum"', "1 does not conform to restriction v>=0 and v<1"]),
    "reg-negative": (["--model.reg", "-1"], ['"model.reg"', "NonNegativeFloat"]),
    "samples-num-negative": (["--samples.num", "-1"], ['"samples.num"', "NonNegativeInt"]),
    "batch-size-0": (
        ["--data.batch_size", "0"],
        ['"data.batch_size"', "PositiveInt", "does not conform to restriction v>0", "Given value: 0"],
    ),
    "val-frac-negative": (
        ["--data.val_frac", "-0.1"],
        ['"data.val_frac"', "-0.1 does not conform to restriction v>0 and v<1"],
    ),
    "fractions-past-1": (["--data.val_frac", "0.6", "--data.test_frac", "0.5"], ["sum to less than 1"]),
    "unknown-flag": (["--modl.lr", "3"], ["unknown flag --modl.lr", "did you mean --model.lr?"]),
    "abbreviated-flag": (["--max_epoch", "3"], ["unknown flag --max_epoch", "did you mean --max_epochs?"]),
    "stray-value": (["--max_epochs", "3", "4"], ["nrecognized arguments: 4"]),
    "bad-choice": (["--data.mode", "bogus"], ['"data.mode"', "Literal['auto', 'pairs', 'counts']", "Got value: bogus"]),
    "bad-strategy": (["--strategy", "bogus"], ["strategy='bogus'", "see python train.py --help"]),
    "num-nodes-0": (["--num_nodes", "0"], ["num_nodes", "see python train.py --help"]),
    "config-missing": (
        ["--config", "nope.yaml"],
        ["--config nope.yaml: no such file", "one of ddp, default, gpu, smoke"],
    ),
    "config-not-yaml": (["--config", "broken.yaml"], ["--config broken.yaml: ", "line 3, column 1"]),
    "config-not-a-mapping": (["--config", "list.yaml"], ["--config list.yaml: ", "Unexpected config"]),
    "config-unknown-key": (["--config", "typo.yaml"], ["--config typo.yaml: ", "does not accept option 'lrr'"]),
}


@pytest.mark.parametrize(
    "args, words", [pytest.param(*v, id=k, marks=[NO_GPU] if "gpu" in k else []) for k, v in FLAGS.items()]
)
def test_bad_flag_is_one_line_and_leaves_nothing(workdir, words_file, train, args, words):
    (workdir / "broken.yaml").write_text("model:\n  lr: [1,\n")
    (workdir / "list.yaml").write_text("- 1\n- 2\n")
    (workdir / "typo.yaml").write_text("model:\n  lrr: 3\n")
    assert_refused(workdir, train("--data.path", "words.txt", "--max_epochs", "1", *args), *words)


@pytest.fixture
def trained_here(workdir, words_file, train) -> Path:
    """One epoch trained in this test's own directory: runs/<time>/checkpoints/{best,last}.ckpt."""
    code, _, err, summary = train("--data.path", "words.txt", "--max_epochs", "1", "--samples.num", "0")
    assert code == 0, err
    return Path(summary["last_ckpt"]).relative_to(workdir)  # (as the error lines show it, below the cwd)


def payload_checkpoint(path: Path, marker: Path) -> None:
    """A checkpoint-shaped file whose pickle would create `marker` when loaded without weights_only."""

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"state_dict": {"W": torch.zeros(2, 2)}, "hyper_parameters": {"vocab": ".a"}, "x": Payload()}, path)


def test_resume_from_a_missing_or_foreign_file(workdir, words_file, train):
    assert_refused(workdir, train("--ckpt_path", "nope.ckpt"), "--ckpt_path nope.ckpt: no such file")
    assert_refused(workdir, train("--ckpt_path", "words.txt"), "words.txt is not a PyTorch checkpoint")
    torch.save({"state_dict": {"weight": torch.zeros(3)}}, workdir / "other.ckpt")
    assert_refused(workdir, train("--ckpt_path", "other.ckpt"), "other.ckpt is not a bigram-lightning checkpoint")


def test_a_code_execution_payload_is_refused_without_running_it(workdir, words_file, train, tool):
    from bigram_lightning.tools.sample import main as sample_main

    marker = workdir / "PWNED"
    payload_checkpoint(workdir / "evil.ckpt", marker)
    line = assert_refused(
        workdir, train("--data.path", "words.txt", "--ckpt_path", "evil.ckpt"), "evil.ckpt was refused"
    )
    assert "posix.system" in line
    code, _, err = tool(sample_main, "--ckpt", "evil.ckpt")
    assert code == 2 and "evil.ckpt was refused" in err
    assert not marker.exists()


def test_a_truncated_checkpoint_names_the_last_good_one(workdir, train, trained_here, tool):
    data = trained_here.read_bytes()
    trained_here.write_bytes(data[: len(data) // 2])  # as a crash in the middle of a save would leave it
    best = trained_here.with_name("best.ckpt")
    line = assert_refused(workdir, train("--ckpt_path", "last", "--max_epochs", "2"), runs_before=1)
    # best.ckpt holds the weights only: no resume from it, and the line says so
    assert f"{trained_here} is truncated or corrupt" in line and f"({best} holds the weights only)" in line
    assert checkpoint_problem(best) is None
    from bigram_lightning.tools.sample import main as sample_main

    code, _, err = tool(sample_main, "--ckpt", str(trained_here))  # the tools take it: the line names it
    assert code == 2 and f"the last good checkpoint is {best} (--ckpt {best})" in err
    line = assert_refused(workdir, train("--ckpt_path", str(best)), "holds the weights only", runs_before=1)
    # corrupt in the middle rather than cut short
    damaged = bytearray(data)
    at = data.index(b"data.pkl") + 64  # inside the pickle record (zeroed tensor bytes would load: no checksum)
    damaged[at : at + 256] = bytes(256)
    trained_here.write_bytes(bytes(damaged))
    assert_refused(workdir, train("--ckpt_path", str(trained_here)), "is truncated or corrupt", runs_before=1)
    trained_here.write_bytes(b"")
    assert_refused(workdir, train("--ckpt_path", str(trained_here)), "is empty", runs_before=1)


def test_a_checkpoint_of_another_vocabulary_is_refused(workdir, train, trained_here):
    (workdir / "abc.txt").write_text("\n".join(["abc", "cab", "bca", "acb", "bac", "cba"] * 20) + "\n")
    line = assert_refused(
        workdir,
        train("--ckpt_path", str(trained_here), "--data.path", "abc.txt"),
        "was trained on the vocabulary",
        runs_before=1,
    )
    assert "resume with --data.path words.txt" in line
    # also when the checkpoint has been moved away from its run directory (no config.yaml to restore from)
    shutil.copy(trained_here, workdir / "moved.ckpt")
    assert_refused(
        workdir, train("--ckpt_path", "moved.ckpt", "--data.path", "abc.txt"), "was trained on", runs_before=1
    )


def test_a_resume_that_would_change_the_split_or_the_optimizer_is_refused(workdir, train, trained_here):
    """Resuming continues the same run: a changed data file (same characters, other words), --seed or fraction
    would silently move words between train, val and test; another optimizer has no state in the checkpoint."""
    resume = ("--ckpt_path", "last", "--max_epochs", "2")
    line = assert_refused(
        workdir, train(*resume, "--seed", "5"), "split its words with --seed 2147483647", runs_before=1
    )
    assert line.endswith("--data.val_frac 0.1 --data.test_frac 0.1: resume with the same split, or start a new run")
    assert_refused(workdir, train(*resume, "--data.test_frac", "0.2"), "split its words with", runs_before=1)
    line = assert_refused(workdir, train(*resume, "--model.optimizer", "sgd"), "--model.optimizer adam", runs_before=1)
    assert line.endswith("resume with it, or start a new run with sgd")
    with open(workdir / "words.txt", "a") as f:
        f.write("zzyzx\n")
    assert_refused(workdir, train(*resume), "was trained on words.txt as it was then", "SHA-256", runs_before=1)


def test_a_diverging_run_stops_and_keeps_the_last_good_checkpoint(workdir, words_file, train):
    """SGD whose lr grows from 1 to 1e12 over 200 steps (--model.lr_decay 1e12, counted in steps): the run stops at
    the first exploded loss; the checkpoint of epoch 0 (lr up to 42) is neither overwritten nor damaged."""
    sgd = ["--model.optimizer", "sgd", "--model.lr", "1", "--data.batch_size", "128", "--model.lr_decay", "1e12"]
    line = assert_refused(
        workdir,
        train("--data.path", "words.txt", "--max_epochs", "8", *sgd),
        "training diverged at step",
        "lower --model.lr",
        "is intact",
        runs_before=1,
    )
    (run,) = (workdir / "runs").iterdir()
    last = run / "checkpoints" / "last.ckpt"
    assert str(last.relative_to(workdir)) in line and checkpoint_problem(last) is None
    ckpt = torch.load(last, weights_only=True)
    diverged = int(line.split("diverged at step ")[1].split()[0])
    assert 0 < ckpt["global_step"] < diverged and torch.isfinite(ckpt["state_dict"]["W"]).all()


def test_a_run_that_diverges_before_any_checkpoint_leaves_no_run(workdir, words_file, train):
    line = assert_refused(workdir, train("--data.path", "words.txt", "--max_epochs", "2", "--model.lr", "1e9"))
    assert "training diverged" in line and "no checkpoint was saved" in line


@pytest.mark.slow
def test_every_checkpoint_load_is_weights_only(workdir, words_file, train, monkeypatch):
    """Resume, test and the tools all load checkpoints with weights_only=True."""
    calls = []
    load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    assert train("--data.path", "words.txt", "--max_epochs", "1", "--samples.num", "0")[0] == 0
    assert train("--ckpt_path", "last", "--max_epochs", "2", "--samples.num", "0")[0] == 0
    assert calls and all(c is True for c in calls), calls
