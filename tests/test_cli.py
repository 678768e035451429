"""`python train.py`, in-process: run directories, samples, summary, resume, W&B, configs, help and errors."""

import json
import math
import random
import shlex
from pathlib import Path

import pytest
import torch
import yaml
from conftest import assert_loads_without_a_trainer

from bigram_lightning.core.counts import count_logprobs
from bigram_lightning.datafile import WordFileDataModule
from bigram_lightning.run.cli import CONFIGS, BigramCLI
from bigram_lightning.run.main import main
from bigram_lightning.run.tracking import wandb_mode

SUMMARY_KEYS = {
    "train_loss",
    "val_loss",
    "test_loss",
    "val_count_nll",
    "test_count_nll",
    "epochs",
    "global_step",
    "best_ckpt",
    "last_ckpt",
    "data_path",
    "data_sha256",
    "wandb_dir",
    "seconds",
}


def run_dirs(workdir: Path) -> list[Path]:
    return sorted(p for p in (workdir / "runs").glob("*") if p.is_dir()) if (workdir / "runs").exists() else []


def test_a_run_prints_samples_every_epoch_and_a_summary(workdir, words_file, train):
    code, out, err, summary = train("--data.path", "words.txt", "--max_epochs", "3")
    assert code == 0, err
    lines = out.splitlines()
    samples = [line for line in lines if line.startswith("epoch ")]
    assert [line.split(" samples: ")[0] for line in samples] == ["epoch 1", "epoch 2", "epoch 3"]  # epochs trained
    assert all(len(line.split(" samples: ")[1].split()) == 10 for line in samples)
    assert SUMMARY_KEYS <= summary.keys()
    assert summary["epochs"] == 3 and summary["global_step"] > 0
    # where the time went: disjoint phases that add up to the seconds (main called in-process: from its start)
    phases = summary["phases"]
    assert list(phases) == ["imports", "startup", "data", "train", "pictures", "test", "finish"]
    assert all(isinstance(v, float) and v >= 0 for v in phases.values()) and phases["train"] > 0
    assert phases["pictures"] > 0 and phases["test"] > 0 and phases["data"] > 0 and phases["imports"] == 0
    assert abs(sum(phases.values()) - summary["seconds"]) <= max(0.03 * summary["seconds"], 0.1)
    # last.ckpt is the end of the run, whether or not the last epoch improved val/loss
    assert torch.load(summary["last_ckpt"], weights_only=True)["global_step"] == summary["global_step"]
    (run,) = [p.relative_to(workdir) for p in run_dirs(workdir)]
    assert lines[-1] == f"summary: {run / 'summary.json'}"
    assert (run / "config.yaml").is_file() and (run / "metrics.csv").is_file()
    assert f"W&B: off (--logger csv); metrics: {run / 'metrics.csv'}\n" in out
    # every path absolute, so that it resolves from any directory; the printed ones below the current one relative
    assert Path(summary["last_ckpt"]) == workdir / run / "checkpoints" / "last.ckpt"
    assert Path(summary["best_ckpt"]).is_file() and Path(summary["best_ckpt"]).is_absolute()
    assert summary["run_dir"] == str(workdir / run) and summary["pictures"][0] == str(workdir / run / "bigram_grid.png")
    assert summary["data_path"] == str(workdir / "words.txt") and len(summary["data_sha256"]) == 64
    assert f"best checkpoint: {run / 'checkpoints' / 'best.ckpt'}\n" in out
    # the printed table is the summary's numbers
    assert f"val NLL   {summary['val_loss']:>8.4f}{summary['val_count_nll']:>18.4f}" in out


def val_losses(run: Path) -> list[float]:
    lines = [line.split(",") for line in (run / "metrics.csv").read_text().splitlines()]
    column = lines[0].index("val/loss")
    return [float(r[column]) for r in lines[1:] if r[column]]


def test_early_stopping_ends_a_flat_run_and_another_max_epochs_trains_them_all(workdir, words_file, train, recwarn):
    """On by default: training ends once val/loss has set no new best for 20 steps (a 600-name list is full-batch:
    validated every step), and best.ckpt holds the best. Resumed as it was, the run is done; resumed with
    --max_epochs, it trains exactly that many (the user asked for them); --early_stopping false trains on to
    --trainer.max_steps."""
    args = ("--data.path", "words.txt", "--samples.num", "0", "--pictures", "false")
    code, out, err, summary = train(*args, "--trainer.enable_progress_bar", "true")
    assert code == 0 and "\nearly stopping at step " in out, err  # (printed after the progress bar has closed)
    (run,) = run_dirs(workdir)
    losses = val_losses(run)
    best = losses.index(min(losses))
    assert len(losses) == summary["global_step"] == best + 1 + 20 < 200  # one validation a step
    assert min(losses[best + 1 :]) >= losses[best] and summary["val_loss"] == pytest.approx(losses[best], abs=1e-6)
    assert f"val NLL has not improved for 20 steps, since step {best + 1}," in out
    assert train(*args, "--ckpt_path", "last")[3]["global_step"] == summary["global_step"]  # nothing left to do
    code, out, err, more = train(*args, "--ckpt_path", "last", "--max_epochs", str(summary["global_step"] + 3))
    assert code == 0 and more["epochs"] == summary["global_step"] + 3, err  # (an epoch is one full-batch step)
    code, out, err, summary = train(*args, "--early_stopping", "false", "--runs_dir", "all")
    assert code == 0 and summary["global_step"] == 200, err
    # switched off on resume: trains on to --max_epochs, and no warning of a callback state without its callback
    code, out, err, more = train(*args, "--ckpt_path", str(run), "--early_stopping", "false", "--max_epochs", "250")
    assert code == 0 and more["epochs"] == 250, err
    assert not [w for w in recwarn if "callbacks used to create the checkpoint" in str(w.message)]


def test_early_stopping_says_so_only_when_it_cut_the_run(workdir, train):
    """A run of a fixed length (--max_epochs) trains all of it: no early stopping; a default run that early stopping
    ended says so, naming what would train on."""
    (workdir / "a.txt").write_text("a\nb\n" * 100)  # two words: the net has learnt them in a few steps
    args = ("--data.path", "a.txt", "--samples.num", "0", "--pictures", "false")
    code, out, err, summary = train(*args, "--max_epochs", "30")
    assert code == 0 and summary["epochs"] == 30 and "early stopping" not in out, err
    code, out, err, summary = train(*args, "--runs_dir", "r")
    assert code == 0 and summary["global_step"] < 200 and "early stopping at step" in out, err
    assert "(--early_stopping false trains to --trainer.max_steps 200)" in out
    code, out, err, summary = train(*args, "--runs_dir", "r-1", "--trainer.max_steps", "-1")
    assert code == 0 and "(--early_stopping false trains on)" in out, err


def test_validating_every_other_epoch_keeps_the_best_validated_w_without_warnings(workdir, words_file, train, recwarn):
    """--trainer.check_val_every_n_epoch 2: best.ckpt and early stopping follow the epochs that validate, and the
    epochs between them, which have no val/loss, say nothing."""
    args = ("--data.path", "words.txt", "--max_epochs", "4", "--samples.num", "0", "--pictures", "false")
    code, out, err, summary = train(*args, "--trainer.check_val_every_n_epoch", "2", "--early_stopping", "false")
    assert code == 0 and summary["epochs"] == 4, err
    (run,) = run_dirs(workdir)
    assert len(val_losses(run)) == 2 and summary["val_loss"] == min(val_losses(run))
    assert not [w for w in recwarn if "monitored key" in str(w.message)], [str(w.message) for w in recwarn]


def test_a_run_that_ends_before_its_first_validation_tests_the_final_w(workdir, words_file, train):
    """--trainer.max_steps within the first epoch: no validation ran, so no best.ckpt: the final W (last.ckpt's) is
    tested and reported, with its exact val NLL, and the report says so."""
    args = ("--data.path", "words.txt", "--data.batch_size", "64", "--samples.num", "0", "--pictures", "false")
    code, out, err, summary = train(*args, "--trainer.max_steps", "3")
    assert code == 0 and summary["global_step"] == 3 and summary["best_ckpt"] is None, err
    assert "best checkpoint: none (training ended before its first validation: the final W was tested)" in out
    last = torch.load(summary["last_ckpt"], weights_only=True)
    assert last["global_step"] == 3
    dm = WordFileDataModule(path="words.txt")
    dm.setup("test")
    W = last["state_dict"]["W"]
    assert summary["val_loss"] == dm.net_nll(W, "val") and abs(summary["test_loss"] - dm.net_nll(W, "test")) < 1e-5


def test_a_checkpoint_callback_of_the_users_own_leaves_best_ckpt_in_charge(workdir, words_file, train):
    """--trainer.callbacks+=ModelCheckpoint watching another metric: its files are written, but the test and the
    report still use best.ckpt (the lowest val/loss); they used the user's checkpoint and called its score val_loss."""
    args = ("--data.path", "words.txt", "--max_epochs", "3", "--samples.num", "0", "--pictures", "false")
    mine = ("--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.monitor", "train/loss_epoch")
    mine += ("--trainer.callbacks.save_on_train_epoch_end", "true")  # (train/loss_epoch exists at epochs' ends)
    code, out, err, summary = train(*args, "--early_stopping", "false", *mine, "--trainer.callbacks.mode", "max")
    assert code == 0, err
    (run,) = run_dirs(workdir)
    assert summary["best_ckpt"].endswith("best.ckpt") and summary["val_loss"] == min(val_losses(run))
    assert len(list((run / "checkpoints").glob("epoch=*.ckpt"))) == 1  # the user's own, beside best and last


def test_the_logger_gets_every_nth_steps_own_loss(workdir, words_file, train):
    """train/loss is logged only on the steps the logger writes (self.log costs a fifth of a step): those rows are
    the very rows of a run that logs every step, at the same steps, none stale."""
    rows = {}
    for every in (1, 3):
        args = ("--data.path", "words.txt", "--max_epochs", "2", "--data.batch_size", "64", "--pictures", "false")
        assert train(*args, "--trainer.log_every_n_steps", str(every), "--runs_dir", f"r{every}")[0] == 0
        (csv,) = Path(f"r{every}").glob("*/metrics.csv")
        lines = [line.split(",") for line in csv.read_text().splitlines()]
        column, step = lines[0].index("train/loss"), lines[0].index("step")
        rows[every] = {int(r[step]): r[column] for r in lines[1:] if r[column]}
    assert len(rows[1]) > 30 and sorted(rows[3]) == [s for s in sorted(rows[1]) if (s + 1) % 3 == 0]
    assert rows[3] == {s: rows[1][s] for s in rows[3]}


@pytest.mark.slow
def test_samples_marks_new_names_and_is_reproducible(workdir, words_file, train):
    outs = [train("--data.path", "words.txt", "--max_epochs", "1")[1] for _ in range(2)]
    line0 = [line for line in outs[0].splitlines() if line.startswith("epoch 1 samples:")]
    line1 = [line for line in outs[1].splitlines() if line.startswith("epoch 1 samples:")]
    assert line0 == line1 and len(line0) == 1
    words = set(words_file.read_text().split())
    names = line0[0].removeprefix("epoch 1 samples: ").split()
    assert all(name.endswith("*") == (name.rstrip("*") not in words) for name in names)


def test_resume_last_continues_the_same_run(workdir, words_file, train):
    code, _, _, first = train("--data.path", "words.txt", "--max_epochs", "2", "--model.lr", "5")
    assert code == 0
    code, out, err, second = train("--ckpt_path", "last", "--max_epochs", "4")
    assert code == 0, err
    assert len(run_dirs(workdir)) == 1 and second["last_ckpt"] == first["last_ckpt"]
    assert second["epochs"] == 4 and second["global_step"] == 2 * first["global_step"]
    assert "epoch 3 samples:" in out and "epoch 1 samples:" not in out  # (epochs trained: 3 and 4 here)
    # the resumed run keeps its own settings (lr 5, the data file) unless told otherwise
    ckpt = torch.load(second["last_ckpt"], weights_only=True)
    assert ckpt["hyper_parameters"]["lr"] == 5
    for path in (second["best_ckpt"], second["last_ckpt"]):  # a resumed run's checkpoints load the Lightning way
        assert_loads_without_a_trainer(path)


@pytest.mark.slow
def test_resume_from_a_checkpoint_file(workdir, words_file, train):
    _, _, _, first = train("--data.path", "words.txt", "--max_epochs", "1")
    code, _, err, second = train("--data.path", "words.txt", "--ckpt_path", first["last_ckpt"], "--max_epochs", "2")
    assert code == 0, err
    assert second["global_step"] == 2 * first["global_step"] and second["run_dir"] == first["run_dir"]


@pytest.mark.slow
def test_wandb_offline_run_and_resume_keep_one_id(workdir, words_file, train, wandb_runs):
    code, out, err, first = train("--data.path", "words.txt", "--max_epochs", "1", "--logger", "wandb")
    assert code == 0, err
    run = Path(first["run_dir"])
    assert len(list(run.glob(f"wandb/offline-run-*/run-{first['wandb_id']}.wandb"))) == 1
    assert f"wandb sync {Path(first['wandb_dir']).relative_to(workdir)}\n" in out
    _, out, _, second = train("--ckpt_path", "last", "--max_epochs", "2", "--logger", "wandb")
    assert second["wandb_id"] == first["wandb_id"]
    segments = [Path(first["wandb_dir"]), Path(second["wandb_dir"])]
    assert sorted(run.glob(f"wandb/offline-run-*/run-{first['wandb_id']}.wandb")) == sorted(
        segment / f"run-{first['wandb_id']}.wandb" for segment in segments
    )
    # both segments, in order, whatever suffix W&B gave the second (-1 when it began in the first's second)
    assert f"wandb sync {' '.join(str(s.relative_to(workdir)) for s in segments)}\n" in out
    # both segments logged under the one id, each its own epochs (W&B writes the files in the background)
    assert [r["init"]["id"] for r in wandb_runs] == [first["wandb_id"]] * 2
    first, second = ({row["epoch"] for row in r["rows"] if "epoch" in row} for r in wandb_runs)
    assert first and second and max(first) <= min(second)


@pytest.mark.slow
def test_W_is_basically_N(workdir, names_txt, train):
    """Trained to convergence, softmax(W) is the count model's P of the data it was trained on."""
    code, _, err, summary = train(
        "--data.path",
        str(names_txt),
        "--data.mode",
        "counts",
        "--max_epochs",
        "3",
        "--model.lr",
        "50",
        "--model.lr_decay",
        "1",
        "--samples.num",
        "0",
        "--early_stopping",
        "false",
        "--model.optimizer",
        "sgd",
        "--model.reg",
        "0",
        "--data.steps_per_epoch",
        "100",
    )
    assert code == 0, err
    W = torch.load(summary["last_ckpt"], weights_only=True)["state_dict"]["W"]
    dm = WordFileDataModule(path=str(names_txt))
    dm.setup("fit")
    P = count_logprobs(dm.counts["train"], smoothing=0).exp()
    assert (W.double().softmax(1) - P).abs().max().item() <= 0.01
    assert abs(summary["val_loss"] - summary["val_count_nll"]) < 0.01


def test_help_documents_the_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--accelerator",
        "--devices",
        "--strategy",
        "--max_epochs",
        "--precision",
        "--num_nodes",
        "--config",
        "--model.lr",
        "--model.reg",
        "--data.path",
        "--data.batch_size",
        "--seed",
        "--logger",
        "--ckpt_path",
        "--samples.num",
        "--wandb.mode",
        "--wandb.tags",
        "--wandb.name",
        "--wandb.log_model",
        "--quiet",
        "--checkpoint_every_n_steps",
        "--model.optimizer",
        "--pictures",
    ):
        assert flag in out
    assert "learning rate at the first step" in out and "one word per line" in out


def test_print_config_shows_the_resolved_config(capsys):
    with pytest.raises(SystemExit):
        main(["--model.lr", "3", "--print_config"])
    out = capsys.readouterr().out
    assert "lr: 3.0" in out and "batch_size: auto" in out and "max_steps: 200" in out


@pytest.mark.parametrize(
    "args, quiet, log_model",
    [
        ([], False, False),
        (["--quiet"], True, False),
        (["--quiet", "--no_quiet"], False, False),
        (["--quiet", "--wandb.log_model"], True, True),
        (["--wandb.log_model", "--no_wandb.log_model"], False, False),
    ],
)
def test_switches_and_their_no_forms_that_help_lists(capsys, args, quiet, log_model):
    """--quiet and --wandb.log_model switch on; --no_quiet and --no_wandb.log_model, which --help lists, off."""
    with pytest.raises(SystemExit):
        main([*args, "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["quiet"] is quiet and config["wandb"]["log_model"] is log_model


@pytest.mark.parametrize("config", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_every_shipped_config_parses_and_instantiates(workdir, config):
    args = ["--config", str(CONFIGS / config)]
    if "gpu" in config and not torch.cuda.is_available():
        args += ["--accelerator", "cpu"]  # parse what ships; a CPU machine cannot build a GPU trainer
    cli = BigramCLI(args=args)
    assert cli.trainer.max_epochs == cli.config.max_epochs
    assert cli.datamodule.hparams.batch_size == cli.config.data.batch_size
    assert cli.model.hparams.lr == cli.config.model.lr
    cli.discard_run()  # (its W&B run and its run directory)


def test_adam_in_counts_mode_reaches_the_count_model_in_one_epoch(workdir, words_file, train):
    args = ["--data.mode", "counts", "--model.optimizer", "adam", "--model.lr", "0.5", "--model.lr_decay", "1"]
    args += ["--model.reg", "0", "--data.steps_per_epoch", "100"]  # (unsmoothed: the count model is its optimum)
    code, out, err, summary = train("--data.path", "words.txt", "--max_epochs", "1", "--pictures", "false", *args)
    assert code == 0, err
    assert 0 <= summary["train_gap"] < 0.01


def test_pictures_false_draws_nothing(workdir, words_file, train):
    code, out, err, summary = train("--data.path", "words.txt", "--max_epochs", "1", "--pictures", "false")
    assert code == 0, err
    assert summary["pictures"] == [] and summary["phases"]["pictures"] == 0.0 and "pictures: none" in out
    assert not list(Path(summary["run_dir"]).glob("*.png"))


def test_a_shipped_config_is_found_by_name_from_any_directory(workdir, words_file):
    for args in (["--config", "smoke"], ["--config=smoke"]):
        cli = BigramCLI(args=[*args, "--data.path", "words.txt"])
        assert cli.config.max_epochs == 2 and cli.trainer.limit_train_batches == 5 and cli.config.logger == "csv"
        cli.discard_run()


def test_missing_data_file_is_one_line_and_leaves_nothing(workdir, train):
    code, out, err, summary = train("--data.path", "nope.txt")
    assert code == 2 and summary is None
    assert err.strip().splitlines()[-1:] == [
        "error: data file nope.txt not found: pass --data.path to a UTF-8 text file with one word per line"
    ]
    assert "Traceback" not in err and "Warning" not in err
    assert run_dirs(workdir) == []


def test_resume_without_runs_is_a_clear_error(workdir, train):
    code, _, err, _ = train("--ckpt_path", "last")
    assert code == 2 and "no run under runs/ has checkpoints/last.ckpt" in err


def test_wandb_goes_offline_without_a_key(monkeypatch, tmp_path):
    for var in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    assert wandb_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # a key, but no server
    assert wandb_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode("auto") == "disabled" and wandb_mode("offline") == "offline"  # a flag given wins


@pytest.mark.parametrize("precision", ["64-true", "bf16-mixed"])
@pytest.mark.parametrize("mode", ["pairs", "counts"])
@pytest.mark.slow
def test_precisions_and_modes_train(workdir, words_file, train, precision, mode):
    code, _, err, summary = train(
        "--data.path",
        "words.txt",
        "--max_epochs",
        "2",
        "--precision",
        precision,
        "--data.mode",
        mode,
        "--samples.num",
        "2",
        "--data.batch_size",
        "128",
    )
    assert code == 0, err
    assert summary["val_loss"] < 3.0  # from ~3.8 at the random init
    for path in (summary["best_ckpt"], summary["last_ckpt"]):
        assert_loads_without_a_trainer(path)


@pytest.mark.slow
def test_wandb_run_tells_the_story(workdir, words_file, train, wandb_runs):
    """Name, tags, the resolved config with the data's provenance, the val/loss-vs-count chart, the pictures."""
    code, out, err, summary = train(
        "--data.path",
        "words.txt",
        "--max_epochs",
        "2",
        "--logger",
        "wandb",
        "--wandb.name",
        "story",
        "--wandb.tags",
        "[baseline, small]",
        "--wandb.log_model",
    )
    assert code == 0, err
    assert "note: --wandb.log_model: the run is offline, so no checkpoint is uploaded" in err
    (run,) = wandb_runs
    assert run["init"]["name"] == "story" and run["init"]["tags"] == ["baseline", "small"]
    assert run["init"]["id"] == summary["wandb_id"] and run["init"]["mode"] == "offline"
    config = run["config"]
    assert config["data"]["sha256"] == summary["data_sha256"] and config["data"]["file"] == "words.txt"
    assert config["data"]["vocab"] == summary["vocab"] and sum(config["data"]["words"].values()) == 600
    assert config["config"]["max_epochs"] == 2 and config["config"]["wandb"]["tags"] == ["baseline", "small"]
    logged = set().union(*run["rows"])
    names = {
        "val/loss",
        "val/count_nll",
        "samples",
        "charts/val_loss_vs_count_nll",
        "pictures/bigram_grid",
        "pictures/loss_curve",
        "test/loss",
        "train/loss_epoch",
    }
    assert names <= logged, names - logged
    assert {"val/loss", "test/loss", "val/count_nll", "val/best_loss"} <= run["summary"], run["summary"]
    # W&B's run summary as its table shows it: the last val/loss a plain number, best.ckpt's under its own key
    # one epoch numbering: W&B's epoch of each validation is the epochs trained, as the console and summary.json
    # count them (600 words, full batch: an epoch a step)
    assert [row["epoch"] for row in run["rows"] if "val/loss" in row] == [1.0, 2.0] and summary["epochs"] == 2
    assert [line.split(" samples:")[0] for line in out.splitlines() if " samples:" in line] == ["epoch 1", "epoch 2"]
    values = run["summary_values"]
    last_val = [row["val/loss"] for row in run["rows"] if "val/loss" in row][-1]
    assert isinstance(values["val/loss"], float) and values["val/loss"] == pytest.approx(last_val)
    assert values["val/best_loss"] == pytest.approx(summary["val_loss"])
    media = Path(summary["wandb_dir"]) / "files" / "media"
    assert len(list(media.glob("images/pictures/*.png"))) == 2
    assert summary["pictures"] == [f"{summary['run_dir']}/bigram_grid.png", f"{summary['run_dir']}/loss_curve.png"]
    assert f"pictures: {' '.join(str(Path(p).relative_to(workdir)) for p in summary['pictures'])}" in out


def test_quiet_prints_no_samples_and_no_bar(workdir, words_file, train):
    code, out, err, summary = train("--data.path", "words.txt", "--max_epochs", "1", "--quiet", quiet=False)
    assert code == 0, err
    assert "samples:" not in out and "Epoch 0" not in out + err
    assert out.splitlines()[1].split() == ["net", "count", "model", "(+1)"]


def test_progress_bar_shows_loss_and_perplexity():
    from types import SimpleNamespace

    from bigram_lightning.run.callbacks import ProgressBar

    trainer = SimpleNamespace(progress_bar_metrics={"train/loss": 2.5, "val/loss": 2.0, "train/loss_epoch": 3})
    shown = ProgressBar().get_metrics(trainer, None)
    assert shown == {"loss": "2.5000", "ppl": "12.18", "val_loss": "2.0000", "val_ppl": "7.39"}


@pytest.mark.parametrize("config", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_every_config_key_is_documented(config):
    """Like `--print_config=comments`: each key of each shipped config says what it does, on its line."""
    lines = (CONFIGS / config).read_text().splitlines()
    keys = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    assert keys and [line for line in keys if " # " not in line] == []


@pytest.mark.slow
def test_start_up_filters_do_not_pile_up_in_process(workdir, words_file, train):
    import logging

    from bigram_lightning.run.errors import not_for_this_project

    for _ in range(2):
        assert train("--data.path", "words.txt", "--max_epochs", "1", "--samples.num", "0")[0] == 0
    filters = logging.getLogger("lightning.pytorch.utilities.rank_zero").filters
    assert filters.count(not_for_this_project) == 1


def test_help_starts_with_the_project(capsys):
    """The project's flags and the Trainer flags people use within the first 100 lines; nothing the program fills
    in itself (the vocabulary) offered as a flag."""
    with pytest.raises(SystemExit):
        main(["--help"])
    lines = capsys.readouterr().out.splitlines()
    first = "\n".join(lines[:100])
    for flag in ("--data.path", "--model.lr", "--max_epochs", "--accelerator", "--devices", "--ckpt_path"):
        assert f"  {flag} " in first, flag
    assert not any(line.lstrip().startswith("--model.vocab") for line in lines)


def test_the_report_states_both_gaps_and_hints_at_the_fix(workdir, words_file, train):
    """Far from done (one epoch of SGD at a tiny learning rate): the train gap and one hint, to train on; converged
    without smoothing: a small non-negative train gap (the unsmoothed count model is the optimum on its data) and
    no hint to train on; converged but far above the count model on val: the hint to smooth, with a larger reg."""
    slow = ("--model.optimizer", "sgd", "--model.lr", "0.1", "--model.reg", "0")
    code, out, err, summary = train("--data.path", "words.txt", "--max_epochs", "1", *slow)
    assert code == 0, err
    assert summary["train_gap"] > 0.05 and f"on train {summary['train_gap']:.4f}" in out
    hints = [line for line in out.splitlines() if line.startswith("hint: ")]
    assert len(hints) == 1 and "still falling: train on with --ckpt_path last --max_epochs 2" in hints[0]
    assert summary["val_gap"] == pytest.approx(summary["val_loss"] - summary["train_loss"])
    exact = ("--data.mode", "counts", "--model.optimizer", "sgd", "--model.lr", "50", "--model.lr_decay", "1")
    code, out, err, summary = train("--data.path", "words.txt", *exact, "--model.reg", "0", "--max_epochs", "3")
    assert code == 0, err
    assert 0 <= summary["train_gap"] < 0.01 and "hint: training" not in out
    # 60 words of 2-3 characters drawn from 150 ideographs: no smoothing, and even the best val is far off
    r = random.Random(0)
    chars = [chr(0x4E00 + i) for i in range(150)]
    words = ["".join(r.choice(chars) for _ in range(r.randint(2, 3))) for _ in range(60)]
    (workdir / "zh.txt").write_text("\n".join(words) + "\n")
    code, out, err, summary = train("--data.path", "zh.txt", "--model.reg", "0", "--runs_dir", "o")
    assert code == 0, err
    hints = [line for line in out.splitlines() if line.startswith("hint: ")]
    assert summary["val_loss"] - summary["val_count_nll"] > 0.05
    assert len(hints) == 1 and "smooth it more with --model.reg" in hints[0] and "(now 0)" in hints[0]
    assert "note: val NLL" in out and "above the uniform model's" in out  # (random characters: chance at best)
    # the default smoothing (reg auto) on the same list: below the count model, and no hint
    code, out, err, summary = train("--data.path", "zh.txt", "--runs_dir", "auto")
    assert code == 0 and summary["val_loss"] < summary["val_count_nll"] and "hint:" not in out, err


def test_runs_started_in_the_same_second_get_a_directory_each(tmp_path, monkeypatch):
    """A sweep that starts its runs at once: each claims its own runs/<time>[-n] by making it."""
    from concurrent.futures import ThreadPoolExecutor

    from bigram_lightning.run import runs

    monkeypatch.setattr(runs.time, "strftime", lambda fmt: "20261202-120000")
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda _: runs.run_dir_for(str(tmp_path / "runs"), None), range(16)))
    assert len({run_dir for run_dir, _ in made}) == 16 and all(new and run_dir.is_dir() for run_dir, new in made)


def test_a_terminal_that_cannot_show_the_characters_gets_their_escapes(workdir, monkeypatch):
    """An ASCII (or Windows cp1252) stdout and a word list of CJK characters and emoji: the samples, the tools' names
    and scores are printed as escapes, where a UnicodeEncodeError ended the run mid-training."""
    import io

    from bigram_lightning.tools.sample import main as sample_main
    from bigram_lightning.tools.score import main as score_main

    words = [a + b for a in "一二三😀x" for b in "四五六😁y"] * 12
    (workdir / "cjk.txt").write_text("\n".join(words) + "\n")
    (workdir / "score.txt").write_text("一四\n")
    for run in (
        lambda: main(["--data.path", "cjk.txt", "--max_epochs", "1", "--logger", "none", "--pictures", "false"]),
        lambda: sample_main(["--num", "5"]),
        lambda: score_main(["score.txt"]),
    ):
        out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
        monkeypatch.setattr("sys.stdout", out)
        assert run() == 0
        out.flush()
        text = out.buffer.getvalue().decode("ascii")
        assert "\\u" in text or "\\U" in text, text


def test_the_printed_wandb_sync_command_survives_spaces_in_paths(workdir, words_file, train):
    args = ("--data.path", "words.txt", "--max_epochs", "1", "--samples.num", "0", "--pictures", "false")
    code, out, err, summary = train(*args, "--logger", "wandb", "--runs_dir", "my runs")
    assert code == 0, err
    line = next(line for line in out.splitlines() if "wandb sync" in line)
    command = shlex.split(line.split("upload it with: ")[1])
    assert command[:2] == ["wandb", "sync"] and len(command) == 3 and Path(command[2]).is_dir(), line


def test_the_sync_command_names_every_offline_segment_in_order(tmp_path):
    """W&B names a segment offline-run-<time>-<id>, and offline-run-<time>-<id>-<n> when another of the run began in
    the same second: every one is uploaded, in the order they ran (the pattern *-<id> missed the suffixed ones)."""
    from bigram_lightning.run.report import offline_segments

    names = [
        "offline-run-20261206_101010-ab12cd34",
        "offline-run-20261206_101010-ab12cd34-1",
        "offline-run-20261206_101010-ab12cd34-2",
        "offline-run-20261206_101010-ab12cd34-10",
        "offline-run-20261206_101011-ab12cd34",
        "offline-run-20261206_101010-ffff0000",  # another run's
    ]
    for name in reversed(names):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"run-{name.split('-')[3]}.wandb").write_bytes(b"")
    assert [p.name for p in offline_segments(tmp_path, "ab12cd34")] == [
        names[0],
        names[1],
        names[2],
        names[3],
        names[4],
    ]


def test_the_readme_explains_every_key_of_summary_json(trained):
    """README's table of summary.json's keys names exactly the keys a run writes; and the derived figures recompute
    from the keys beside them."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme.split("<!-- summary-keys -->")[1].split("<!-- /summary-keys -->")[0]
    documented = set()
    for row in [line for line in table.splitlines() if line.startswith("| `")]:
        first = row.split("|")[1]
        documented |= {key.strip("` ") for key in first.split(",")}
    (path,) = trained.glob("runs/*/summary.json")
    summary = json.loads(path.read_text())
    assert documented == set(summary)
    assert summary["train_gap"] == pytest.approx(summary["train_loss"] - summary["train_count_nll_unsmoothed"])
    assert summary["val_gap"] == pytest.approx(summary["val_loss"] - summary["train_loss"])
    assert summary["uniform_nll"] == pytest.approx(math.log(len(summary["vocab"])))
    assert all(Path(summary[k]).is_absolute() for k in ("run_dir", "best_ckpt", "last_ckpt", "data_path"))
