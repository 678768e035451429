"""The end of a run: the final NLLs beside the count model's, summary.json and where things are; or the one line
that says where an interrupted run stopped and how to go on."""

import contextlib
import json
import math
import shlex
import signal
import threading
from pathlib import Path
from typing import Optional

import torch

from bigram_lightning.run import INTERRUPTED_WHILE_STARTING
from bigram_lightning.run.callbacks import DrawPictures
from bigram_lightning.run.errors import NO_ROOM, Stopped, reader_gone
from bigram_lightning.run.files import shown, write_atomic
from bigram_lightning.run.stopping import StopWhenFlat, epochs_trained


def absolute(path) -> Optional[str]:
    return None if path is None else str(Path(path).resolve())


def report(cli, tested: dict) -> int:
    """Finish the W&B run, write summary.json and print the table. `tested` is trainer.test's result for best.ckpt,
    which the model now holds."""
    trainer = cli.trainer
    dm = cli.datamodule
    last = cli.run_dir / "checkpoints" / "last.ckpt"
    pictures = next((c for c in trainer.callbacks if isinstance(c, DrawPictures)), None)
    summary = results(cli, tested)
    summary |= {
        "epochs": epochs_trained(trainer),
        "global_step": trainer.global_step,
        "best_ckpt": absolute(cli.best.best_model_path or None),
        "last_ckpt": absolute(last) if last.is_file() else None,  # (None: not one step, as under --trainer.max_time)
        "data_path": dm.hparams.data_abspath,
        "data_sha256": dm.hparams.data_sha256,
        "vocab": dm.vocab.itos,
        "run_dir": absolute(cli.run_dir),
        "wandb_dir": None,
        "wandb_id": None,
        "pictures": [absolute(p) for p in pictures.paths] if pictures else [],
    }
    wandb_line = finish_wandb(cli, summary)
    path = cli.run_dir / "summary.json"
    cli.clock.mark("finish")
    summary["seconds"] = round(cli.clock.total(), 3)
    summary["phases"] = {k: round(v, 3) for k, v in cli.clock.phases(dm.seconds).items()}
    write_atomic(path, (json.dumps(summary, indent=2) + "\n").encode())
    print(f"\n{'':10}{'net':>8}{'count model (+1)':>18}")
    for split in ("train", "val", "test"):
        print(f"{split + ' NLL':<10}{summary[split + '_loss']:>8.4f}{summary[split + '_count_nll']:>18.4f}")
    train_gap = f"net - count model (unsmoothed) on train {summary['train_gap']:.4f}"
    print(f"gaps: {train_gap}, val - train {summary['val_gap']:.4f}")
    for line in hints(cli, summary):
        print(f"hint: {line}")
    for line in notes(summary):
        print(f"note: {line}")
    best_line = "none (training ended before its first validation: the final W was tested)"
    if summary["best_ckpt"]:
        best_line = shown(summary["best_ckpt"])
    last_line = shown(last) if summary["last_ckpt"] else "none (training ended before its first step)"
    print(f"best checkpoint: {best_line}\nlast checkpoint: {last_line}\n{wandb_line}")
    shown_pictures = " ".join(shown(p) for p in summary["pictures"]) or "none (--pictures false)"
    print(f"pictures: {shown_pictures}\nsummary: {shown(path)}")
    return 0


def results(cli, tested: dict) -> dict:
    """The NLLs: the final W's on train (exactly, from the split's counts, before the test loaded best.ckpt),
    best.ckpt's on val and test (the model the test and the tools use), beside the count models'."""
    dm = cli.datamodule
    # best.ckpt's, as logged; or the tested W's, which the model holds, when none was logged: the final W's when
    # training ended before its first validation (--trainer.max_steps within the first epoch: no best.ckpt)
    val_loss = cli.best.best_model_score
    val_loss = dm.net_nll(cli.model.W, "val") if val_loss is None else float(val_loss)
    summary = {
        "train_loss": cli.final_train_nll,
        "train_count_nll": dm.count_nll("train"),
        "train_count_nll_unsmoothed": dm.count_nll("train", smoothing=0),
        "val_loss": val_loss,
        "val_count_nll": dm.count_nll("val"),
        "test_loss": tested["test/loss"],
        "test_count_nll": tested["test/count_nll"],
        "uniform_nll": math.log(len(dm.vocab)),
    }
    # the unsmoothed count model is the optimum on the training split: the net's distance to it is how far training
    # has to go; val above train is what the net does not carry over (on a sparse corpus: overfitting)
    summary["train_gap"] = summary["train_loss"] - summary["train_count_nll_unsmoothed"]
    summary["val_gap"] = summary["val_loss"] - summary["train_loss"]
    return summary


def hints(cli, summary: dict) -> list[str]:
    """At most one diagnosis, judged against what the run optimises: under-fit (training ended while val NLL was
    still falling) first; over-fit (val far above the +1 count model's) only once training has converged."""
    trainer = cli.trainer
    model = cli.model
    stopper = next(c for c in trainer.callbacks if isinstance(c, StopWhenFlat))
    step = trainer.global_step
    early = stopper.enabled and stopper.stopped_step == step > 0
    # converged: stopped by val, the lr fallen all the way, or (no smoothing) at the count model, its optimum
    converged = early or step >= model.hparams.decay_steps or (model.reg_weight == 0 and summary["train_gap"] < 0.01)
    behind = summary["val_loss"] - summary["val_count_nll"]
    if not converged and behind > 0.05:
        more = f"--ckpt_path last --trainer.max_steps {max(2 * step, model.hparams.decay_steps)}"
        if trainer.max_epochs and trainer.max_epochs > 0:
            more = f"--ckpt_path last --max_epochs {2 * trainer.max_epochs}"
        return [
            f"training ended at step {step} with val NLL still {behind:.2f} nats above the count model's and the lr "
            f"still falling: train on with {more}"
        ]
    if converged and behind > 0.05:
        reg = max(2 * model.reg_weight, 0.01 * (len(cli.datamodule.vocab) / 27) ** 2)
        return [
            f"val NLL is {behind:.2f} nats above the +1 count model's: the net fits its training words more closely "
            f"than they carry over; smooth it more with --model.reg {reg:.3g} (now {model.reg_weight:.3g})"
        ]
    return []


def notes(summary: dict) -> list[str]:
    if summary["val_loss"] <= summary["uniform_nll"]:
        return []
    return [
        f"val NLL {summary['val_loss']:.4f} is above the uniform model's, log V = {summary['uniform_nll']:.4f}: on "
        f"this list no model predicts held-out words better than chance (the +1 count model: "
        f"{summary['val_count_nll']:.4f}); a longer list would"
    ]


def finish_wandb(cli, summary: dict) -> str:
    """Close the W&B run (best.ckpt's val/loss in its summary as val/best_loss) and say where it is."""
    if cli.config.logger == "csv":
        return f"W&B: off (--logger csv); metrics: {shown(cli.run_dir / 'metrics.csv')}"
    if cli.config.logger != "wandb":
        return f"W&B: off (--logger {cli.config.logger})"
    run = cli.trainer.logger.experiment
    if run.settings.mode == "disabled":
        return "W&B: disabled (WANDB_MODE or --wandb.mode)"
    summary["wandb_dir"] = absolute(Path(run.dir).parent)
    summary["wandb_id"] = run.id
    run.summary["val/best_loss"] = summary["val_loss"]
    if run.settings.mode in ("offline", "dryrun"):  # (asking an offline run for its url prints a warning)
        segments = [shown(segment) for segment in offline_segments(Path(summary["wandb_dir"]).parent, run.id)]
        line = f"W&B: offline run {shown(summary['wandb_dir'])}; upload it with: wandb sync {shlex.join(segments)}"
    else:
        line = f"W&B: {run.url}"
    run.finish()
    return line


def offline_segments(wandb_dir: Path, run_id: str) -> list[Path]:
    """Every offline segment of the run (one per start, the same id), in order: W&B names one
    offline-run-<time>-<id>, or offline-run-<time>-<id>-<n> when another began in the same second."""

    def started(segment: Path) -> tuple[str, int]:
        time_part, _, rest = segment.name.removeprefix("offline-run-").partition("-")
        suffix = rest.removeprefix(run_id).lstrip("-")
        return time_part, int(suffix or 0)

    segments = [run_file.parent for run_file in wandb_dir.glob(f"offline-run-*/run-{run_id}.wandb")]
    return sorted(segments, key=started)


@contextlib.contextmanager
def signals_noted(trainer):
    """Lightning handles SIGTERM and Ctrl-C in fit (the pictures included): during the test either is noted here,
    and the run stops after it. Noted, not raised in the handler: a library's bare `except:` swallowed that (fsspec's
    exists(), and the test then failed with 'best.ckpt not found')."""
    noted, main = [], threading.current_thread() is threading.main_thread()
    stops = (signal.SIGTERM, signal.SIGINT) if main else ()
    previous = {signum: signal.signal(signum, lambda signum, frame: noted.append(signum)) for signum in stops}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler or signal.SIG_DFL)
    if noted or trainer.received_sigterm:
        raise Stopped(noted[0] if noted else signal.SIGTERM)


def stop_signal(cli, e: BaseException) -> Optional[int]:
    """The signal that stopped the run, if one did. Lightning ends a run at SIGTERM, or at a Ctrl-C outside a
    training step, with SystemExit; a print to a closed pipe fails with BrokenPipeError (Python ignores SIGPIPE)."""
    trainer = getattr(cli, "trainer", None)
    if isinstance(e, Stopped):
        return e.signum
    if isinstance(e, BrokenPipeError):  # `python train.py | head`: stdout's reader has gone, as a SIGPIPE says
        reader_gone()
        return signal.SIGPIPE
    if trainer is not None and trainer.received_sigterm:
        return signal.SIGTERM
    if isinstance(e, KeyboardInterrupt) or (trainer is not None and trainer.state.status == "interrupted"):
        return signal.SIGINT
    return None


def saved(cli) -> str:
    last = cli.run_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        return "no checkpoint yet"
    return f"{shown(last)} holds step {torch.load(last, 'cpu', weights_only=True)['global_step']}"


def interrupted(cli) -> str:
    """One line: where the run stopped, what is saved, and how to go on."""
    if getattr(cli, "trainer", None) is None:
        return INTERRUPTED_WHILE_STARTING
    runs = f" --runs_dir {shlex.quote(cli.config.runs_dir)}" if cli.config.runs_dir != "runs" else ""
    step = cli.trainer.global_step
    epoch = epochs_trained(cli.trainer)
    resume = f"python train.py --ckpt_path last{runs}"
    return f"interrupted at step {step} (epoch {epoch:g}): {saved(cli)}: resume with {resume}"


def cannot_write(cli, e: OSError) -> Optional[str]:
    """The one line for a full disk or a read-only place met by any writer of the run (W&B's media files, a
    library's), or None: any other OSError is a bug and shows as one."""
    if e.errno not in NO_ROOM or getattr(cli, "trainer", None) is None:
        return None
    return (
        f"error: cannot write {e.filename or 'into ' + shown(cli.run_dir)} ({e.strerror}): free some space or choose a "
        f"writable --runs_dir; the checkpoints are whole: {saved(cli)}"
    )
