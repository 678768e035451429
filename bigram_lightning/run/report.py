"""The end of a run: the final NLLs beside the count model's, summary.json and where things are; or the one line
that says where an interrupted run stopped and how to go on."""

import contextlib
import json
import os
import shlex
import signal
import threading
import time
from pathlib import Path
from typing import Optional

import torch

from bigram_lightning.run import INTERRUPTED_WHILE_STARTING
from bigram_lightning.run.callbacks import DrawPictures, PhaseClock
from bigram_lightning.run.errors import NO_ROOM, Stopped, reader_gone
from bigram_lightning.run.files import write_atomic


def report(cli, tested: dict, start: float) -> int:
    """Finish the W&B run, write summary.json and print the table. `tested` is trainer.test's result for best.ckpt,
    which the model now holds."""
    trainer, dm, run_dir, best = cli.trainer, cli.datamodule, cli.run_dir, cli.best
    last = run_dir / "checkpoints" / "last.ckpt"
    clock = next(c for c in trainer.callbacks if isinstance(c, PhaseClock))
    pictures = next((c for c in trainer.callbacks if isinstance(c, DrawPictures)), None)
    phases = {"startup": 0.0, "data": dm.seconds, "train": 0.0, "val_test": 0.0} | clock.phases
    phases |= {"pictures": pictures.seconds if pictures else 0.0, "logger_finish": 0.0}
    summary = {
        "train_loss": dm.net_nll(cli.model.W, "train"),  # exactly, from the split's bigram counts (O(V²))
        "train_count_nll": dm.count_nll("train"),
        # best.ckpt's, as the Trainer logged it; or the final W's, when training ended before its first validation
        # (--trainer.max_steps within the first epoch), so that best.ckpt does not exist
        "val_loss": float(best.best_model_score) if best.best_model_path else dm.net_nll(cli.model.W, "val"),
        "val_count_nll": dm.count_nll("val"),
        "test_loss": tested["test/loss"],
        "test_count_nll": tested["test/count_nll"],
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "best_ckpt": os.path.relpath(best.best_model_path) if best.best_model_path else None,
        "last_ckpt": str(last) if last.is_file() else None,  # (None: not one step, as under a --trainer.max_time)
        "data_path": dm.hparams.data_file,
        "data_sha256": dm.hparams.data_sha256,
        "vocab": dm.vocab.itos,
        "run_dir": str(run_dir),
        "wandb_dir": None,
        "wandb_id": None,
        "pictures": [str(p) for p in pictures.paths] if pictures else [],
    }
    # the unsmoothed count model is the optimum on the training split: the net's distance to it is how far training
    # has to go; val above train is what the net does not carry over (on a sparse corpus: overfitting)
    summary["train_gap"] = summary["train_loss"] - dm.count_nll("train", smoothing=0)
    summary["val_gap"] = summary["val_loss"] - summary["train_loss"]
    wandb_line = f"W&B: off (--logger {cli.config.logger})"
    if cli.config.logger == "wandb":
        run = trainer.logger.experiment
        if run.settings.mode == "disabled":
            wandb_line = "W&B: disabled (WANDB_MODE or --wandb.mode)"
        else:
            summary["wandb_dir"], summary["wandb_id"] = os.path.relpath(Path(run.dir).parent), run.id
            if run.settings.mode in ("offline", "dryrun"):  # (asking an offline run for its url prints a warning)
                # every segment of the run (one per start, the same id), in order: half of them would upload half
                segments = sorted(Path(summary["wandb_dir"]).parent.glob(f"offline-run-*-{run.id}"))
                upload = f"wandb sync {shlex.join(map(str, segments))}"
                wandb_line = f"W&B: offline run {summary['wandb_dir']}; upload it with: {upload}"
            else:
                wandb_line = f"W&B: {run.url}"
        finish = time.perf_counter()
        run.finish()
        phases["logger_finish"] = time.perf_counter() - finish
    summary["seconds"] = round(time.perf_counter() - start, 3)
    summary["phases"] = {k: round(v, 3) for k, v in phases.items()}
    path = run_dir / "summary.json"
    write_atomic(path, (json.dumps(summary, indent=2) + "\n").encode())
    print(f"\n{'':10}{'net':>8}{'count model (+1)':>18}")
    for s in ("train", "val", "test"):
        print(f"{s + ' NLL':<10}{summary[s + '_loss']:>8.4f}{summary[s + '_count_nll']:>18.4f}")
    train_gap = f"net - count model (unsmoothed) on train {summary['train_gap']:.4f}"
    print(f"gaps: {train_gap}, val - train {summary['val_gap']:.4f}")
    reg = cli.model.hparams.reg  # (smoothing keeps the net from the count model on purpose)
    if summary["train_gap"] > 0.05 and reg == 0:
        print(
            f"hint: training is {summary['train_gap']:.2f} nats from the count model: train longer (--max_epochs, "
            "--early_stopping false), raise --model.lr, or use --data.mode counts"
        )
    if summary["val_gap"] > 0.1:
        # the term is a mean over V² weights: the same pull per weight as the notebooks' 0.01 at V = 27
        suggested = 0.01 * (len(dm.vocab) / 27) ** 2
        print(
            f"hint: val NLL is {summary['val_gap']:.2f} nats above train: the net overfits; smooth it with "
            f"--model.reg (e.g. {max(suggested, 2 * reg):.3g})"
        )
    best_line = summary["best_ckpt"] or "none (training ended before its first validation: the final W was tested)"
    last_line = summary["last_ckpt"] or "none (training ended before its first step)"
    print(f"best checkpoint: {best_line}\nlast checkpoint: {last_line}\n{wandb_line}")
    print(f"pictures: {' '.join(summary['pictures']) or 'none (--pictures false)'}\nsummary: {path}")
    return 0


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
    return f"{last} holds step {torch.load(last, 'cpu', weights_only=True)['global_step']}"


def interrupted(cli) -> str:
    """One line: where the run stopped, what is saved, and how to go on."""
    if getattr(cli, "trainer", None) is None:
        return INTERRUPTED_WHILE_STARTING
    runs = f" --runs_dir {shlex.quote(cli.config.runs_dir)}" if cli.config.runs_dir != "runs" else ""
    step, epoch = cli.trainer.global_step, cli.trainer.current_epoch
    return (
        f"interrupted at step {step} (epoch {epoch}): {saved(cli)}: resume with python train.py --ckpt_path last{runs}"
    )


def cannot_write(cli, e: OSError) -> Optional[str]:
    """The one line for a full disk or a read-only place met by any writer of the run (W&B's media files, a
    library's), or None: any other OSError is a bug and shows as one."""
    if e.errno not in NO_ROOM or getattr(cli, "trainer", None) is None:
        return None
    return (
        f"error: cannot write {e.filename or 'into ' + str(cli.run_dir)} ({e.strerror}): free some space or choose a "
        f"writable --runs_dir; the checkpoints are whole: {saved(cli)}"
    )
