"""`python train.py`: parse the command line (cli.py), train, test, report; a signal or a mistake ends it in one
line."""

import logging
import os
import sys
import time
from typing import Optional

import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException

from bigram_lightning.run.cli import BigramCLI
from bigram_lightning.run.errors import Stopped, UserError, quiet_startup
from bigram_lightning.run.phases import PhaseClock, process_started
from bigram_lightning.run.report import cannot_write, interrupted, report, signals_noted, stop_signal
from bigram_lightning.run.runs import RUN_DIR_ENV


def run() -> None:
    """`python train.py` and `bigram-train`: main's exit code, through the interpreter's normal exit."""
    sys.exit(main(start=process_started()))


def main(args: Optional[list[str]] = None, start: Optional[float] = None) -> int:
    """Train, test, report; the exit code. `start`: when the process started (its imports count in summary.json's
    seconds), or None, from here (main called from Python)."""
    imported = time.time()
    clock = PhaseClock(imported if start is None else start, imported)
    cli = None
    quiet_startup()
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)  # W is V×V: a step is too small to share, and threads fight W&B's process for cores
    saved = {v: os.environ.get(v) for v in (RUN_DIR_ENV, "WANDB_MODE", "WANDB_CACHE_DIR", "WANDB_DATA_DIR")}
    level = logging.getLogger("lightning.pytorch").level
    try:
        cli = BigramCLI(args, clock)
        trainer, model, dm = cli.trainer, cli.model, cli.datamodule
        os.environ[RUN_DIR_ENV] = str(cli.run_dir)  # where the processes DDP starts find the run
        trainer.fit(model, datamodule=dm, ckpt_path=cli.config.ckpt_path, weights_only=True)
        if cli.config.pictures:  # (else the pictures' phase is 0, and fit's last moments count in the test's)
            cli.clock.mark("pictures")
        cli.final_train_nll = dm.net_nll(model.W, "train")  # the final W's (the test loads best.ckpt's into the model)
        best = cli.best.best_model_path or None  # None: fit never validated; the final W is tested
        with signals_noted(trainer):  # a SIGTERM or Ctrl-C during the test stops the run after it
            if not trainer.received_sigterm:
                tested = trainer.test(model, datamodule=dm, ckpt_path=best, verbose=False, weights_only=True)
        cli.clock.mark("test")
        return report(cli, tested[0]) if trainer.is_global_zero else 0
    except (Stopped, KeyboardInterrupt, SystemExit, BrokenPipeError) as e:
        signum = stop_signal(cli, e)
        if signum is None:  # --help, --print_config
            raise
        if getattr(cli, "trainer", None) is not None:  # (while starting, the run's set-up is undone already)
            cli.discard_run(128 + signum, keep=True)
        print(interrupted(cli), file=sys.stderr)
        return 128 + signum
    except (UserError, MisconfigurationException, OSError) as e:
        line = cannot_write(cli, e) if isinstance(e, OSError) else f"error: {str(e).splitlines()[0]}"
        if line is None:
            raise
        print(line, file=sys.stderr)
        if cli is not None:
            cli.discard_run(keep=isinstance(e, OSError))
        return 2
    finally:
        logging.getLogger("lightning.pytorch").setLevel(level)
        for var, value in saved.items():  # the variables a run sets for itself and the processes it starts
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
