"""`python train.py`'s command line: LightningCLI, every flag typed and documented, and the run it sets up."""

import difflib
import logging
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Optional

# W&B before torch and Lightning: wandb.init imports W&B's public API, whose pydantic models look up their
# docstrings through inspect.getmodule, a scan of sys.modules; done here, 0.2 s instead of 0.7 s (issue 12)
import wandb.apis.public

# isort: split
import lightning as L
from jsonargparse import ActionYesNo
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from bigram_lightning.core.model import BigramLM
from bigram_lightning.datafile import WordFileDataModule
from bigram_lightning.run import callbacks as cb
from bigram_lightning.run.checkpoint_io import AtomicCheckpointIO, checkpoint_callbacks
from bigram_lightning.run.checkpoints import check_resume, read_checkpoint
from bigram_lightning.run.errors import UserError, check_trainer
from bigram_lightning.run.flags import FLAGS, PATIENCE, SHORTCUTS, SWITCHES, TRAINER_DEFAULTS, VAL_EVERY
from bigram_lightning.run.phases import PhaseClock
from bigram_lightning.run.runs import open_run, resume_target, run_dir_for
from bigram_lightning.run.stopping import StopOnDivergence, StopWhenFlat
from bigram_lightning.run.tracking import WandbRun, wandb_logger

# the shipped configs: package data in an installed wheel, the top-level configs/ in a checkout
PACKAGE = Path(__file__).resolve().parents[1]
CONFIGS = next(p for p in (PACKAGE / "configs", PACKAGE.parent / "configs") if p.is_dir())
USAGE = "python train.py [--config FILE] [--data.path FILE] [--max_epochs N] [--accelerator gpu] [...]"


class BigramArgumentParser(LightningArgumentParser):
    def error(self, message: str, ex: Optional[Exception] = None):  # one line, as every mistake: no usage text
        raise UserError(f"{' '.join(message.split())}: see python train.py --help")


class BigramCLI(LightningCLI):
    def __init__(self, args: Optional[list[str]] = None, clock: Optional[PhaseClock] = None) -> None:
        self.restart: Optional[Path] = None  # a run stopped before its first checkpoint, trained again
        self.clock = clock or PhaseClock(time.time(), time.time())
        try:
            super().__init__(
                BigramLM,
                WordFileDataModule,
                parser_class=BigramArgumentParser,
                args=args,
                run=False,
                save_config_callback=None,  # config.yaml is written into the run directory as soon as it exists
                # never seed the global RNGs: every draw has a generator seeded by --seed
                seed_everything_default=False,
                auto_configure_optimizers=False,
                trainer_defaults=TRAINER_DEFAULTS,
                parser_kwargs={
                    "default_config_files": [str(CONFIGS / "default.yaml")],
                    "description": "Train makemore's bigram neural net on a word list, then test it.",
                    "allow_abbrev": False,  # --max_epoch is a typo, not --max_epochs
                    "usage": USAGE,
                },
            )
        except BaseException:  # a mistake, a signal while the run is set up (W&B, the Trainer): none of it is left
            self.discard_run()
            raise

    def add_core_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """The project's own groups first in --help; the Trainer's ~80 flags after them."""
        parser.add_lightning_class_args(BigramLM, "model")
        parser.add_lightning_class_args(WordFileDataModule, "data")
        parser.add_lightning_class_args(cb.SampleNames, "samples")
        parser.add_lightning_class_args(self.trainer_class, "trainer")
        parser.set_defaults({f"trainer.{k}": v for k, v in self.trainer_defaults.items()})

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for name, (type_, default, help_) in {**FLAGS, **SHORTCUTS}.items():
            parser.add_argument(f"--{name}", type=type_, default=default, help=help_)
        for name, help_ in SWITCHES.items():
            parser.add_argument(f"--{name}", action=ActionYesNo, default=False, help=help_)
        for name in SHORTCUTS:
            parser.link_arguments(name, f"trainer.{name}")
        for target in ("model.init_seed", "data.seed", "samples.seed"):
            parser.link_arguments("seed", target, compute_fn=int)  # (a plain int: the checkpoint keeps it)
        parser.link_arguments("quiet", "samples.verbose", compute_fn=lambda quiet: not quiet)
        parser.link_arguments("data", "model.vocab", compute_fn=lambda data: data.vocab.itos, apply_on="instantiate")

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        args, configs = list(sys.argv[1:] if args is None else args), []
        known = set(parser.get_defaults().keys()) | {"config", "print_config", "help", *(f"no_{k}" for k in SWITCHES)}
        for i, arg in enumerate(args):
            flag = arg.split("=")[0]
            parts = flag[2:].rstrip("+").split(".")  # (--trainer.callbacks.out: a given callback's own argument)
            if flag.startswith("--") and not any(".".join(parts[:k]) in known for k in range(1, len(parts) + 1)):
                near = difflib.get_close_matches(flag[2:], known, n=1)
                hint = f"did you mean --{near[0]}? " if near else ""
                raise UserError(f"unknown flag {flag}: {hint}python train.py --help lists every flag")
            if flag not in ("--config", "-c") or ("=" not in arg and i + 1 == len(args)):
                continue
            at, config = (i, arg.partition("=")[2]) if "=" in arg else (i + 1, args[i + 1])
            if not config.lstrip().startswith("{") and not Path(config).is_file():
                if not (CONFIGS / f"{config}.yaml").is_file():  # a shipped config by name: --config gpu
                    shipped = ", ".join(sorted(p.stem for p in CONFIGS.glob("*.yaml")))
                    raise UserError(f"--config {config}: no such file: pass a YAML file or one of {shipped}")
                config = str(CONFIGS / f"{config}.yaml")
                args[at] = f"--config={config}" if "=" in arg else config
            configs.append(config)
        try:
            super().parse_arguments(parser, args)
        except UserError as e:  # the parser's message names a flag's key, but not a config file it could not read
            named = str(e).lower().startswith(("parser key", "unrecognized")) or not configs
            raise UserError(str(e) if named else f"--config {' '.join(configs)}: {e}") from None
        if self.config.ckpt_path:  # resume: the run's own settings first, then the flags given now
            path, run = resume_target(self.config.ckpt_path, self.config.runs_dir)
            if (run / "config.yaml").is_file():
                parser.default_config_files = [*parser.default_config_files, str(run / "config.yaml")]
                super().parse_arguments(parser, args)
            if path is None:
                print(
                    f"note: {run} was stopped before its first checkpoint: training it again from the start, with "
                    "its config.yaml and W&B id",
                    file=sys.stderr,
                )
                self.restart = run
            self.config.ckpt_path = None if path is None else str(path)

    def before_instantiate_classes(self) -> None:
        check_trainer(self.config.trainer)
        # a checkpoint to resume is vetted before the data is read: a damaged one is named with a good one beside it
        self.ckpt = (
            read_checkpoint(Path(self.config.ckpt_path), "--ckpt_path", resume=True) if self.config.ckpt_path else {}
        )
        # stdout that is not a terminal (a log file, CI): no live bar redrawn with carriage returns, a line an epoch
        self.epoch_lines = not sys.stdout.isatty() and self.config.trainer.enable_progress_bar is None
        if self.config.max_epochs is not None and self.config.trainer.max_steps == TRAINER_DEFAULTS["max_steps"]:
            self.config.trainer.max_steps = -1  # an exact length asked for: all of its epochs
        if self.config.quiet:
            self.config.trainer.enable_progress_bar = False
            self.config.trainer.enable_model_summary = False
            logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # main restores it

    def instantiate_trainer(self, **kwargs):
        # the data has been read and checked (the data module exists): only now the run's directory and W&B run
        check_resume(self.ckpt, self.config.ckpt_path, self.datamodule.hparams, self.config.model.optimizer)
        info = self.open_run_dir()
        trainer = self.config_init.trainer
        bar = trainer.enable_progress_bar is not False and not self.epoch_lines
        callbacks = [*(trainer.callbacks or []), *self.run_callbacks(info["wandb_id"], bar)]
        plugins = trainer.plugins if isinstance(trainer.plugins, list) else [trainer.plugins] if trainer.plugins else []
        plugins = [*plugins, AtomicCheckpointIO()]
        logger = False if self.config.logger == "none" else CSVLogger(self.run_dir, name="", version="")
        if self.config.logger == "wandb":
            logger = wandb_logger(self.config.wandb, self.run_dir, info["wandb_id"], self.config.quiet)
        kwargs = dict(kwargs, enable_progress_bar=bar, default_root_dir=str(self.run_dir))
        if trainer.val_check_interval is None and trainer.check_val_every_n_epoch == 1:  # (unless the user chose)
            kwargs.update(val_check_interval=self.val_every, check_val_every_n_epoch=None)
        try:
            return super().instantiate_trainer(logger=logger, callbacks=callbacks, plugins=plugins, **kwargs)
        except (MisconfigurationException, ValueError, TypeError, RuntimeError) as e:  # the Trainer refuses a setting
            raise UserError(f"{str(e).splitlines()[0]} (see python train.py --help)") from None

    def open_run_dir(self) -> dict:
        """Make (or reopen) the run directory with its config.yaml and run.json; the latter's contents."""
        if self.restart:
            self.run_dir = self.restart
            self.new_run = False
        else:
            self.run_dir, self.new_run = run_dir_for(self.config.runs_dir, self.config.ckpt_path)
        self.config.trainer.default_root_dir = str(self.run_dir)
        wandb_id = self.ckpt.get("callbacks", {}).get("WandbRun", {}).get("wandb_id")
        config = self.parser.dump(self.config) if rank_zero_only.rank == 0 else None  # (one process writes it)
        return open_run(self.run_dir, self.new_run, self.restart is not None, wandb_id, config)

    @property
    def val_every(self) -> int:
        """Steps between validations: every step when each sees the whole training split, else every epoch or
        VAL_EVERY steps, whichever comes first."""
        dm = self.datamodule
        dm.setup("fit")  # (the split decides the mode and the batch size; done once)
        if dm.mode == "counts" or dm.batch_size >= dm.num_pairs("train"):
            return 1
        return min(math.ceil(dm.num_pairs("train") / dm.batch_size), VAL_EVERY)

    def run_callbacks(self, wandb_id: str, bar: bool) -> list[L.Callback]:
        """The callbacks around the step, in the order they run."""
        losses = cb.LossHistory(self.epoch_lines and not self.config.quiet)
        # best.ckpt's callback, kept by name: a ModelCheckpoint the user adds comes first in trainer.checkpoint_callback
        self.best, last = checkpoint_callbacks(self.run_dir / "checkpoints", self.config.checkpoint_every_n_steps)
        callbacks = [
            WandbRun(wandb_id, self.config.as_dict()),
            cb.CountBaseline(),
            StopOnDivergence(),
            cb.EpochNumber(),
            losses,
            self.clock,
            self.best,
            last,
        ]
        if bar:
            callbacks.append(cb.ProgressBar())
        if self.config.pictures:
            callbacks.append(cb.DrawPictures(losses))
        early = self.config.early_stopping and self.config.max_epochs is None
        val_every = self.val_every
        callbacks.append(StopWhenFlat(early, val_every, max(PATIENCE, 2 * val_every)))
        return callbacks

    def discard_run(self, exit_code: int = 2, keep: bool = False) -> None:
        """Close the W&B run; unless `keep`, remove a run directory this command made that holds no checkpoint."""
        if wandb.run is not None:
            wandb.run.finish(exit_code=exit_code)
        saved = getattr(self, "new_run", False) and any((self.run_dir / "checkpoints").glob("*.ckpt"))
        if not keep and getattr(self, "new_run", False) and not saved:
            shutil.rmtree(self.run_dir, ignore_errors=True)
