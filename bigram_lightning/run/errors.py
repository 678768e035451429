"""How mistakes are reported: `error: <problem>: <fix>` on one line, exit code 2, no traceback; and no warnings
that do not apply."""

import argparse
import errno
import io
import logging
import os
import sys
import warnings
from typing import Callable, Optional

import torch

from bigram_lightning.core.vocab import UserError

NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)  # a full disk, a quota, a read-only place: the user's to fix


class Diverged(UserError):
    """Training stopped at a non-finite or exploded loss."""


class Stopped(BaseException):
    """The run stopped at a signal (SIGTERM, SIGINT), after saving last.ckpt at that step. A BaseException, as
    KeyboardInterrupt: no library's `except Exception` may swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class ToolParser(argparse.ArgumentParser):
    """argparse for the tools (`bigram-sample`, …): a bad flag is one line and exit code 2, like every mistake."""

    def error(self, message: str):
        raise UserError(f"{message}: see {self.prog} --help")


def tool_parser(prog: str, description: str) -> ToolParser:
    p = ToolParser(prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--ckpt", default="last", help="a checkpoint file, a run directory, or 'last': the newest run's")
    p.add_argument("--runs_dir", default="runs", help="where train.py puts its runs")
    return p


def tool_main(body: Callable[[list[str]], None]) -> Callable[..., int]:
    """A tool's console-script entry point: `body(argv)`, with a UserError as `error: …` on stderr and exit code 2."""

    def main(argv: Optional[list[str]] = None) -> int:
        printable_output()
        try:
            body(sys.argv[1:] if argv is None else list(argv))
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except BrokenPipeError:  # `bigram-sample --num 1000 | head` closed the pipe: not an error
            reader_gone()
        except KeyboardInterrupt:  # Ctrl-C: out, as the shell expects (128 + SIGINT), without a traceback
            return 130
        return 0

    return main


def printable_output() -> None:
    """A character the terminal cannot show (an ASCII or Windows cp1252 console, a CJK word list) is printed as its
    escape, '\\u4e00', instead of ending the run in a UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


def reader_gone() -> None:
    """stdout's reader has gone (`| head`): what is still to be written goes nowhere, instead of failing again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def check_trainer(trainer) -> None:
    """The Trainer's settings, before the data is read; Lightning's own messages name neither the flag nor the fix."""
    check_loops(trainer)
    check_devices(trainer)


def check_loops(trainer) -> None:
    """How long the run trains, validates and tests, and the Trainer flags that would replace the project's own."""
    if trainer.limit_val_batches == 0:  # (Lightning's fails at the test: no best.ckpt)
        raise UserError(
            f"--trainer.limit_val_batches {trainer.limit_val_batches:g} turns validation off, but best.ckpt, early "
            "stopping and the final table need val/loss: pass a fraction of the val split instead (e.g. 0.1)"
        )
    for flag, value in (("--max_epochs", trainer.max_epochs), ("--trainer.max_steps", trainer.max_steps)):
        if value == 0 or (value or 0) < -1:  # (Lightning would train nothing)
            raise UserError(f"{flag} {value} trains nothing: pass 1 or more, or -1 for no limit")
    if trainer.logger is not None:  # (the run's own logger is passed to the Trainer: theirs would go unused)
        raise UserError("--trainer.logger is not used: the run logs to --logger's choice (wandb, csv or none)")
    if trainer.use_distributed_sampler:  # (Lightning's would wrap the batch sampler, which has no state then)
        raise UserError("--trainer.use_distributed_sampler is not supported: each step is split across devices already")
    if trainer.overfit_batches:  # (Lightning swaps in a sampler of its own, which the batches of pairs do not take)
        raise UserError("--trainer.overfit_batches is not supported: train on a short word list (--data.path) instead")
    if trainer.limit_train_batches == 0:
        raise UserError("--trainer.limit_train_batches 0 trains nothing: pass 1 or more batches, or a fraction")
    if trainer.limit_test_batches == 0:  # (Lightning's test would return no result)
        raise UserError(
            "--trainer.limit_test_batches 0 turns the test off, but the final table needs it: pass a fraction"
        )
    for flag in ("accumulate_grad_batches", "check_val_every_n_epoch"):  # (Lightning's: a ZeroDivisionError)
        if trainer[flag] is not None and trainer[flag] < 1:
            raise UserError(f"--trainer.{flag} {trainer[flag]}: pass 1 or more")


def check_devices(trainer) -> None:
    accelerator = trainer.accelerator
    devices = trainer.devices
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        build = "a CPU-only build of torch" if torch.version.cuda is None else f"torch {torch.__version__}"
        raise UserError(
            f"--accelerator {accelerator}: {build} finds no CUDA GPU on this machine: use --accelerator cpu "
            "(or auto, which picks a GPU when there is one)"
        )
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise UserError("--accelerator mps: this machine has no Apple GPU: use --accelerator cpu (or auto)")
    if devices in (0, "0", []) or (isinstance(devices, int) and devices < -1):
        raise UserError(
            f"--devices {devices}: pass a number of devices >= 1, -1 for all of them, a list of device ids such as "
            "'[0, 1]', or auto"
        )


def check_val_interval(trainer, steps: int) -> None:
    """A validation every N steps needs N <= the steps of an epoch (Lightning's ValueError names neither the flag
    nor every fix)."""
    every = trainer.val_check_interval
    if isinstance(every, int) and every > steps and trainer.check_val_every_n_epoch is not None:
        raise UserError(
            f"--trainer.val_check_interval {every} exceeds the steps per epoch ({steps}): pass at most {steps}, a "
            "fraction of an epoch (e.g. 0.5), or add --trainer.check_val_every_n_epoch null to count across epochs"
        )


# start-up warnings that do not apply: batches are slices of in-memory tensors (worker processes would only add
# IPC); main passes its command line on purpose; the run directory is ours; a torch deprecation inside Lightning;
# small word lists have fewer steps per epoch than the logging interval; an epoch without validation
# (--trainer.check_val_every_n_epoch) has no val/loss for best.ckpt, which waits for the next validation; a run
# directory that moved since its last checkpoint (the report then reads best.ckpt's val NLL itself)
IGNORED = (
    "does not have many workers",
    "args parameter is intended",
    "exists and is not empty",
    "LeafSpec",
    "smaller than the logging interval",
    "could not find the monitored key",
    "The dirpath has changed",
)


def not_for_this_project(record: logging.LogRecord) -> bool:
    """Lightning's advert for its logging service, its TPU line on machines without TPUs, and its note on the
    validation interval train.py chose."""
    return not any(s in record.getMessage() for s in ("litlogger", "TPU available", "was configured so validation"))


def quiet_startup() -> None:
    """train.py's start: no warnings that do not apply, and output that any terminal can print."""
    for text in IGNORED:
        warnings.filterwarnings("ignore", f".*{text}.*")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(not_for_this_project)  # (added once)
    printable_output()
