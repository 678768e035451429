"""`python train.py`: parse the config, train, test, and write the run's summary."""

import difflib
import hashlib
import json
import logging
import netrc
import os
import re
import secrets
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Literal, Optional, Union
import urllib.error
import urllib.request
from urllib.parse import urlparse

import torch
import yaml
from jsonargparse import ActionYesNo
from jsonargparse.typing import NonNegativeInt
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from bigram_lightning.callbacks import CountBaseline, Pictures, ProgressBar, RunInfo, SampleNames
from bigram_lightning.checkpointing import AtomicCheckpointIO, LastCheckpoint
from bigram_lightning.corpus import write_atomic
from bigram_lightning.data import BigramDataModule
from bigram_lightning.errors import Diverged, UserError
from bigram_lightning.model import BigramLM
from bigram_lightning.plot import GRID_PNG, LOSS_PNG
from bigram_lightning.tools import find_checkpoint, read_checkpoint

# ddp re-runs this command once per extra device; they find the run directory of the first process here
RUN_DIR_ENV = "BIGRAM_LIGHTNING_RUN_DIR"
# W&B may never hold up training for longer than these: the reachability probe of --wandb.mode auto, and
# wandb.init of an online run (after which the run goes offline)
WANDB_PROBE_SECONDS = 3
WANDB_INIT_SECONDS = 10
# the Trainer flags that also work without the `trainer.` prefix, as in `python train.py --accelerator gpu`
TRAINER_SHORTCUTS = {
    "accelerator": (str, "auto", "cpu, gpu, mps, auto (the best available), …"),
    "devices": (Union[int, str, list[int]], "auto", "how many devices (or which) to train on"),
    "strategy": (str, "auto", "auto, ddp, …: how the devices share the work"),
    "num_nodes": (int, 1, "machines taking part in distributed training"),
    "precision": (Optional[str], None, "32-true (default), bf16-mixed, 16-mixed, 64-true"),
    "max_epochs": (int, 10, "passes over the training pairs"),
}


def config_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "configs"


class BigramArgumentParser(LightningArgumentParser):
    """LightningCLI's parser, but a mistake is reported like every other one: a single line with its fix
    (and the nearest real flag for a misspelt one), not the whole usage text."""

    def error(self, message: str, ex: Optional[Exception] = None):
        message = " ".join(message.split())  # jsonargparse's messages span lines
        unknown = re.match(r"[Uu]nrecognized arguments: (\S+)", message)
        key = re.match(r"Group '([\w.]+)' does not accept option '(\w+)'", message)  # a misspelt config file key
        if unknown or key:
            token = unknown.group(1) if unknown else f"--{key.group(1)}.{key.group(2)}"
            if not token.startswith("-"):
                raise UserError(f"unexpected argument {token!r}: each flag takes one value (quote a list: '[a, b]')")
            flag = token.split("=")[0]
            near = difflib.get_close_matches(flag, [o for o in self._option_string_actions if o.startswith("--")], n=1)
            hint = f"did you mean {near[0]}? " if near else ""
            raise UserError(f"unknown {'flag' if unknown else 'config key'} {flag}: {hint}python train.py --help lists every flag")
        # 'Parser key "model.lr": Expected a <class 'float'>. Got value: abc' -> "--model.lr: expected float, got 'abc'"
        message = re.sub(r'^Parser key "([^"]+)": ', r"--\1: ", message)
        message = re.sub(r"Expected a <class '(\w+)'>\. Got value: (.*)", r"expected \1, got '\2'", message)
        message = re.sub(r"Expected a typing\.Literal\[(.*)\]\. Got value: (.*)", r"expected one of \1, got '\2'", message)
        message = re.sub(r"Does not validate against any of the Union subtypes.* Given value: (.*)", r"invalid value '\1'", message)
        raise UserError(f"{message}: see python train.py --help")


class BigramCLI(LightningCLI):
    def __init__(self, args: Optional[list[str]] = None) -> None:
        super().__init__(
            BigramLM,
            BigramDataModule,
            parser_class=BigramArgumentParser,
            save_config_callback=None,  # config.yaml is written into the run directory as soon as it exists
            trainer_defaults={
                "use_distributed_sampler": False,  # BatchIndexSampler shards by rank itself
                "num_sanity_val_steps": 0,
                "log_every_n_steps": 10,
            },
            parser_kwargs={
                "default_config_files": [str(config_dir() / "default.yaml")],
                "description": "Train makemore's bigram neural net on a word list, then test it.",
                "allow_abbrev": False,  # --max_epoch is a typo, not --max_epochs: abbreviations would hide typos
            },
            args=args,
            run=False,
            auto_configure_optimizers=False,
        )

    def add_default_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--seed", type=int, default=2147483647,
            help="seeds W's initialisation, the word split, the batch order and the samples",
        )

    def _set_seed(self) -> None:
        """Never seed the global RNGs: every random draw goes through a generator seeded from --seed."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(SampleNames, "samples")
        for target in ("model.init_seed", "data.seed", "samples.seed"):
            parser.link_arguments("seed", target)
        for name, (type_, default, help_) in TRAINER_SHORTCUTS.items():
            parser.add_argument(f"--{name}", type=type_, default=default, help=help_)
            parser.link_arguments(name, f"trainer.{name}")
        parser.add_argument(
            "--ckpt_path", type=Optional[str], default=None,
            help="resume: 'last' (the most recent run under --runs_dir) or a checkpoint file",
        )
        parser.add_argument(
            "--checkpoint_every_n_steps", type=NonNegativeInt, default=0,
            help="also write checkpoints/last.ckpt every N training steps, mid-epoch (0: only at the end of every "
            "epoch, as always); --ckpt_path last then resumes exactly where the run was stopped or killed",
        )
        parser.add_argument("--runs_dir", type=str, default="runs", help="where each run gets its own directory")
        parser.add_argument(
            "--logger", type=Literal["wandb", "csv", "none"], default="wandb",
            help="wandb (Weights & Biases), csv (metrics.csv in the run directory) or none",
        )
        parser.add_argument("--wandb.project", type=str, default="bigram-lightning", help="W&B project")
        parser.add_argument(
            "--wandb.mode", type=Literal["auto", "online", "offline", "disabled"], default="auto",
            help="auto: online when W&B has an API key and is reachable, else offline (sync later)",
        )
        parser.add_argument(
            "--wandb.name", type=Optional[str], default=None, help="W&B run name (default: the run directory's)"
        )
        parser.add_argument("--wandb.tags", type=list[str], default=[], help="W&B tags, as in --wandb.tags '[a, b]'")
        parser.add_argument(
            "--wandb.log_model", action=ActionYesNo, default=False,
            help="upload the best and last checkpoints to W&B as an artifact at the end (online runs only)",
        )
        parser.add_argument(
            "--quiet", action=ActionYesNo, default=False,
            help="for logs and CI: no progress bar, no per-epoch samples, no Lightning or W&B chatter; only the "
            "final table and errors",
        )
        parser.link_arguments("quiet", "samples.verbose", compute_fn=lambda quiet: not quiet)

    def before_instantiate_classes(self) -> None:
        check_devices(self.config.trainer.accelerator, self.config.trainer.devices)
        # read the data first: a bad file is reported before anything is written, and the model is built
        # knowing its vocabulary (so W exists from __init__ and the logged hyperparameters hold it)
        ckpt = read_checkpoint(Path(self.config.ckpt_path), "--ckpt_path") if self.config.ckpt_path else {}
        self.data = BigramDataModule(**self.config.data)
        self.data.prepare_data()
        self.data.setup("fit")
        if ckpt and ckpt["hyper_parameters"]["vocab"] != self.data.vocab.itos:
            trained_on = ckpt.get("datamodule_hyper_parameters", {}).get("data_file", "the data it was trained on")
            raise UserError(
                f"--ckpt_path {self.config.ckpt_path} was trained on the vocabulary {ckpt['hyper_parameters']['vocab']!r}, "
                f"but {self.data.hparams.data_file} has {self.data.vocab.itos!r}: resume with --data.path {trained_on}"
            )
        self.config.model.vocab = self.data.vocab.itos
        wandb_id = ckpt.get("callbacks", {}).get("RunInfo", {}).get("wandb_id")
        self.run_dir, self.new_run = resolve_run_dir(self.config.runs_dir, self.config.ckpt_path, wandb_id)
        self.run_info = json.loads((self.run_dir / "run.json").read_text())
        # a run writes inside its run directory and the data cache: W&B's debug logs and staging files would
        # otherwise go to the home directory (a user's own setting wins)
        for var, name in (("WANDB_CACHE_DIR", "cache"), ("WANDB_DATA_DIR", "data")):
            os.environ.setdefault(var, str((self.run_dir / "wandb" / name).resolve()))
        self.config.trainer.default_root_dir = str(self.run_dir)
        if self.config.quiet:
            self.config.trainer.enable_progress_bar = False
            self.config.trainer.enable_model_summary = False
            # Lightning's info lines ("GPU available: …"); main restores the level when it returns
            logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
        if rank_zero_only.rank == 0:
            # at once and whole: a run killed at any later moment can be started again from it (--ckpt_path last)
            config = self.parser.dump(self.config, skip_none=False)
            write_atomic(self.run_dir / "config.yaml", config.encode())

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except Exception as e:
            self.discard_run()
            if isinstance(e, (MisconfigurationException, ValueError, TypeError)):
                # the Trainer refuses a setting (--strategy foo, --num_nodes 0, …): its message, on one line
                raise UserError(f"{str(e).splitlines()[0]} (see python train.py --help)") from None
            raise
        self.datamodule = self.data  # the same settings, and it has already read the data

    def discard_run(self) -> None:
        """After an error: close the W&B run, and remove the run directory if this command made it and it holds
        no checkpoint, so that no empty run directory is left looking like a real run (nor found by 'last')."""
        logger = getattr(getattr(self, "trainer", None), "logger", None)
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger.experiment.finish(exit_code=2, quiet=True)
        if getattr(self, "new_run", False) and not (self.run_dir / "checkpoints").exists():
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def instantiate_trainer(self, **kwargs):
        self.checkpoint = ModelCheckpoint(
            dirpath=self.run_dir / "checkpoints", filename="best", monitor="val/loss", mode="min", save_top_k=1,
        )
        # after best.ckpt at an epoch's end, so that last.ckpt holds the best checkpoint's new state
        last = LastCheckpoint(self.run_dir / "checkpoints", self.config.checkpoint_every_n_steps)
        callbacks = list(self.config_init.trainer.callbacks or []) + [
            RunInfo(self.run_info), CountBaseline(), Pictures(), self.checkpoint, last
        ]
        if self.config_init.trainer.enable_progress_bar is not False:
            callbacks.append(ProgressBar())
        plugins = self.config_init.trainer.plugins or []
        plugins = [*(plugins if isinstance(plugins, list) else [plugins]), AtomicCheckpointIO()]
        return super().instantiate_trainer(logger=self.make_logger(), callbacks=callbacks, plugins=plugins, **kwargs)

    def make_logger(self):
        if self.config.logger == "none":
            return False
        if self.config.logger == "csv":
            return CSVLogger(self.run_dir, name="", version="")
        cfg = self.config.wandb
        mode = wandb_mode(cfg.mode)
        if mode == "online":
            logger = self.wandb_logger(mode)
            try:
                logger.experiment  # wandb.init now, within WANDB_INIT_SECONDS, rather than at the first log
                return logger
            except Exception as e:  # a bad key, a server that does not answer, …: W&B's own error types vary
                why = (str(e).strip().splitlines() or [type(e).__name__])[0]
                print(f"warning: W&B could not start an online run ({why}): logging offline instead", file=sys.stderr)
                import wandb  # imported by WandbLogger already

                wandb.teardown()  # the service still holds the run id the failed init claimed
                mode = "offline"
        # W&B's process-wide settings follow WANDB_MODE: an offline run then sends W&B's own telemetry nowhere,
        # instead of waiting on an unreachable server at exit (main restores the variable)
        os.environ["WANDB_MODE"] = mode
        return self.wandb_logger(mode)

    def wandb_logger(self, mode: str) -> WandbLogger:
        cfg = self.config.wandb
        log_model = cfg.log_model and mode == "online"
        if cfg.log_model and not log_model:
            print(f"note: --wandb.log_model: the run is {mode}, so no checkpoint is uploaded", file=sys.stderr)
        logger = WandbLogger(
            project=cfg.project, name=cfg.name or self.run_dir.name, tags=list(cfg.tags),
            # absolute: W&B's service process outlives a run and resolves relative paths against its own cwd
            save_dir=str(self.run_dir.resolve()),
            id=self.run_info["wandb_id"], resume="allow", mode=mode, log_model=log_model,
            settings={"silent": self.config.quiet, "init_timeout": WANDB_INIT_SECONDS},
        )
        # Lightning passes wandb.init anonymous=None, which wandb >= 0.22 answers with a deprecation warning on
        # every run: leave the setting out, its default is the same
        logger._wandb_init.pop("anonymous", None)
        return logger


def check_devices(accelerator, devices) -> None:
    """Before the data is read; Lightning's own messages for these name neither the flag nor the fix."""
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


def wandb_mode(requested: str) -> str:
    """Online only when it can work: an API key and a reachable server; otherwise offline, never a prompt or a hang."""
    if requested != "auto":
        return requested
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    url = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
    host = urlparse(url).hostname or "api.wandb.ai"
    try:
        has_key = bool(os.environ.get("WANDB_API_KEY")) or netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        has_key = False
    if not has_key:
        return "offline"
    try:  # any HTTP answer will do: a server that accepts connections but never answers counts as unreachable
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=WANDB_PROBE_SECONDS).close()
    except urllib.error.HTTPError:
        pass
    except (OSError, ValueError):  # no network, no such host, a timeout, a malformed URL
        return "offline"
    return "online"


def resolve_run_dir(runs_dir: str, ckpt_path: Optional[str], wandb_id: Optional[str] = None) -> tuple[Path, bool]:
    """The run directory: the resumed run's, or a new one named by the time (never by the W&B id). A new one
    for a checkpoint from elsewhere keeps the checkpoint's W&B id (`wandb_id`), so its W&B run goes on."""
    if os.environ.get(RUN_DIR_ENV):
        return Path(os.environ[RUN_DIR_ENV]), False
    if ckpt_path is not None:
        run_dir = Path(os.path.relpath(Path(ckpt_path).resolve().parent.parent))
        if (run_dir / "run.json").is_file():
            return run_dir, False
    name = launcher_run_name()
    if name is not None:
        run_dir = Path(runs_dir) / name
        if (run_dir / "run.json").is_file():
            return run_dir, False
        # every rank writes the same run.json, atomically: the W&B id too derives from the launcher's job id
        write_atomic(run_dir / "run.json", (json.dumps({"wandb_id": hashlib.sha256(name.encode()).hexdigest()[:8]}) + "\n").encode())
        return run_dir, True
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir, n = Path(runs_dir) / stamp, 1
    while run_dir.exists():
        n += 1
        run_dir = run_dir.with_name(f"{stamp}-{n}")
    run_dir.mkdir(parents=True)
    # the W&B id is the run's handle in W&B only: random, so that runs of two users never collide
    write_atomic(run_dir / "run.json", (json.dumps({"wandb_id": wandb_id or secrets.token_hex(4)}) + "\n").encode())
    return run_dir, True


def launcher_run_name() -> Optional[str]:
    """Under torchrun or a multi-task SLURM job every rank runs this command at once, so the ranks name the run
    directory after the launcher's job id instead of the time."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID")
    if run_id == "none":
        raise UserError("under torchrun, pass --rdzv-id ID (the same on every node): it names the run directory")
    if run_id:
        return f"torchrun-{run_id}"
    if "SLURM_PROCID" in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1:  # tasks started by srun
        return f"slurm-{os.environ['SLURM_JOB_ID']}.{os.environ.get('SLURM_STEP_ID', '0')}"
    return None


def newest_run(runs_dir: str) -> Optional[Path]:
    """The run directory under `runs_dir` that was started (config.yaml is written at every start) or saved its
    last.ckpt most recently; None if there is none."""
    def last_active(run: Path) -> int:
        times = []
        for name in ("run.json", "config.yaml", "checkpoints/last.ckpt"):
            try:
                times.append((run / name).stat().st_mtime_ns)
            except OSError:
                pass
        return max(times, default=0)

    runs = {p.parent for p in Path(runs_dir).glob("*/run.json")}
    runs |= {p.parent.parent for p in Path(runs_dir).glob("*/checkpoints/last.ckpt")}
    return max(runs, key=lambda run: (last_active(run), run.name), default=None)


def flag_values(args: list[str], *flags: str) -> list[str]:
    """The values given on the command line to any of `flags`, as `--flag value` or `--flag=value`."""
    values = []
    for i, a in enumerate(args):
        if a in flags and i + 1 < len(args):
            values.append(args[i + 1])
        elif a.split("=", 1)[0] in flags and "=" in a:
            values.append(a.split("=", 1)[1])
    return values


def check_config_files(args: list[str]) -> None:
    """Read every --config file first, so that a missing or broken one is named in the error (the parser's
    own message names neither the file nor the fix)."""
    for value in flag_values(args, "--config", "-c"):
        path = Path(value)
        if not path.is_file():
            if value.lstrip().startswith("{"):
                continue  # inline YAML, as in --config '{max_epochs: 3}': the parser checks it
            raise UserError(f"--config {value}: no such file: pass a YAML file such as configs/smoke.yaml")
        try:
            config = yaml.safe_load(path.read_text())
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"--config {value} cannot be read ({e}): pass a UTF-8 YAML file") from None
        except yaml.YAMLError as e:
            where = getattr(e, "problem_mark", None)
            at = f"line {where.line + 1}, column {where.column + 1}: " if where else ""
            raise UserError(
                f"--config {value} is not valid YAML ({at}{getattr(e, 'problem', None) or e}): fix the file"
            ) from None
        if not isinstance(config, dict):
            raise UserError(f"--config {value} is not a YAML mapping of flags to values: see configs/default.yaml")


def resume_args(args: list[str]) -> tuple[list[str], Optional[Path]]:
    """Resolve `--ckpt_path last` and put the resumed run's config first, so that its settings carry over
    and flags given now (say a larger --max_epochs) override them. Also returns the run directory to train again
    from the start when the newest run was stopped before its first checkpoint (else None)."""
    def value(flag: str, default: Optional[str]) -> Optional[str]:
        return (flag_values(args, flag) or [default])[0]

    ckpt = value("--ckpt_path", None)
    if ckpt is None:
        return args, None
    rest = [a for i, a in enumerate(args) if not (a.startswith("--ckpt_path") or args[i - 1 : i] == ["--ckpt_path"])]
    run = newest_run(value("--runs_dir", "runs")) if ckpt == "last" else None
    if run is None:  # a checkpoint file, or no run at all (find_checkpoint says so)
        path = find_checkpoint(ckpt, value("--runs_dir", "runs"), flag="--ckpt_path")
    else:
        # the newest run's, not the newest last.ckpt: resuming an older run instead would be a silent surprise
        path = run / "checkpoints" / "last.ckpt"
        if not path.is_file():
            if not (run / "config.yaml").is_file():
                raise UserError(
                    f"--ckpt_path last: the newest run, {run}, was stopped while starting, before it saved its "
                    "config.yaml: start it anew with its flags, or pass --ckpt_path PATH to resume another run"
                )
            print(f"note: {run} was stopped before its first checkpoint: training it again from the start, with "
                  "its config.yaml and W&B id", file=sys.stderr)
            return ["--config", str(run / "config.yaml"), *rest], run
    config = path.resolve().parent.parent / "config.yaml"
    prefix = ["--config", str(config)] if config.is_file() else []
    return prefix + rest + ["--ckpt_path", str(path)], None


def log_run_config(logger: WandbLogger, config, datamodule: BigramDataModule) -> None:
    """The resolved config and where the data came from, in wandb.config; the best val/loss in the summary."""
    resolved = json.loads(json.dumps(config.as_dict(), default=str))  # config file paths become strings
    words = {s: int((datamodule.streams[s] == 0).sum()) - 1 for s in ("train", "val", "test")}
    data = {
        "file": datamodule.hparams.data_file, "sha256": datamodule.hparams.data_sha256,
        "vocab": datamodule.vocab.itos, "words": words,
        "pairs": {s: datamodule.num_pairs(s) for s in ("train", "val", "test")},
    }
    logger.experiment.config.update({"config": resolved, "data": data}, allow_val_change=True)
    logger.experiment.define_metric("val/loss", summary="min")


def final_nlls(model: BigramLM, datamodule: BigramDataModule) -> dict[str, float]:
    """The net's and the count model's NLL on every split, exactly, from the split's bigram counts (O(V²))."""
    out = {}
    for s in ("train", "val", "test"):
        out[f"{s}_loss"] = datamodule.net_nll(model.W, s)
        out[f"{s}_count_nll"] = datamodule.count_nll(s)
    return out


def not_for_this_project(record: logging.LogRecord) -> bool:
    """Lightning's advert for its logging service, and its TPU line on machines without TPUs."""
    return not any(s in record.getMessage() for s in ("litlogger", "TPU available"))


def silence_what_does_not_apply() -> None:
    """Start-up warnings that do not apply to this project, each for the reason beside it."""
    # num_workers=0 is deliberate: batches are slices of in-memory tensors, worker processes would only add IPC
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    # main passes the (rewritten) command line to LightningCLI on purpose
    warnings.filterwarnings("ignore", ".*args parameter is intended to run from within Python.*")
    # the run directory is ours and already holds run.json when the CSV logger starts in it
    warnings.filterwarnings("ignore", ".*exists and is not empty.*")
    # torch deprecated an API that Lightning still calls: nothing a user of this project can act on
    warnings.filterwarnings("ignore", ".*LeafSpec.*is deprecated.*")
    # full-batch runs (configs/gpu.yaml) and small word lists have fewer steps per epoch than the logging
    # interval: train/loss_epoch is logged all the same
    warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
    # one function object: however often main runs in a process, the filter is added once
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(not_for_this_project)


def main(args: Optional[list[str]] = None) -> int:
    start = time.perf_counter()
    args = sys.argv[1:] if args is None else list(args)
    silence_what_does_not_apply()
    lightning_log = logging.getLogger("lightning.pytorch")
    level = lightning_log.level
    if "OMP_NUM_THREADS" not in os.environ:
        # W is V×V: a step is too small to split across threads, and on a small machine the threads spin
        # against W&B's service process for the cores (steps up to 20× slower on 2 cores)
        torch.set_num_threads(1)
    cli = None
    # the variables a run sets for itself (and for the processes it starts), restored when main returns
    saved_env = {var: os.environ.get(var) for var in (RUN_DIR_ENV, "WANDB_MODE", "WANDB_CACHE_DIR", "WANDB_DATA_DIR")}
    try:
        check_config_files(args)
        args, restart = resume_args(args)
        if restart is not None:
            os.environ[RUN_DIR_ENV] = str(restart)  # the run directory to train in (resolve_run_dir)
            # a best.ckpt saved just before the kill, ahead of last.ckpt: the run writes it again
            shutil.rmtree(restart / "checkpoints", ignore_errors=True)
        cli = BigramCLI(args=args)
        run_dir, trainer, model, dm = cli.run_dir, cli.trainer, cli.model, cli.datamodule
        os.environ[RUN_DIR_ENV] = str(run_dir)
        if isinstance(trainer.logger, WandbLogger) and trainer.is_global_zero:
            log_run_config(trainer.logger, cli.config, dm)
        # weights_only: loading a checkpoint never runs code (read_checkpoint has vetted a resumed one already)
        trainer.fit(model, datamodule=dm, ckpt_path=cli.config.ckpt_path, weights_only=True)
        trainer.test(model, datamodule=dm, ckpt_path=cli.checkpoint.best_model_path, verbose=False, weights_only=True)
    except (UserError, MisconfigurationException) as e:
        message = str(e).splitlines()[0]
        if isinstance(e, Diverged):
            last = cli.run_dir / "checkpoints" / "last.ckpt"
            message += f" (the last good checkpoint, {last}, is intact)" if last.is_file() else " (no checkpoint was saved)"
        print(f"error: {message}", file=sys.stderr)
        if cli is not None:
            cli.discard_run()
        return 2
    finally:
        for var, value in saved_env.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
        lightning_log.setLevel(level)
    if not trainer.is_global_zero:
        return 0

    summary = {
        **final_nlls(model, dm),
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "best_ckpt": os.path.relpath(cli.checkpoint.best_model_path),
        "last_ckpt": str(run_dir / "checkpoints" / "last.ckpt"),
        "data_path": dm.hparams.data_file,
        "data_sha256": dm.hparams.data_sha256,
        "vocab": dm.vocab.itos,
        "run_dir": str(run_dir),
        "wandb_dir": None,
        "wandb_id": None,
        "pictures": [str(run_dir / name) for name in (GRID_PNG, LOSS_PNG) if (run_dir / name).is_file()],
    }
    wandb_line = f"W&B: off (--logger {cli.config.logger})"
    if isinstance(trainer.logger, WandbLogger) and trainer.logger.experiment.settings.mode == "disabled":
        trainer.logger.experiment.finish()
        wandb_line = "W&B: disabled (WANDB_MODE or --wandb.mode)"
    elif isinstance(trainer.logger, WandbLogger):
        experiment = trainer.logger.experiment
        summary["wandb_dir"] = os.path.relpath(Path(experiment.dir).parent)
        summary["wandb_id"] = experiment.id
        offline = experiment.settings.mode in ("offline", "dryrun")
        experiment.finish()
        wandb_line = (
            f"W&B: offline run {summary['wandb_dir']}; upload it with: wandb sync {summary['wandb_dir']}"
            if offline else f"W&B: {experiment.url}"
        )
    summary["seconds"] = round(time.perf_counter() - start, 3)
    path = run_dir / "summary.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\n{'':10}{'net':>8}{'count model (+1)':>18}")
    for s in ("train", "val", "test"):
        print(f"{s + ' NLL':<10}{summary[s + '_loss']:>8.4f}{summary[s + '_count_nll']:>18.4f}")
    print(f"best checkpoint: {summary['best_ckpt']}\nlast checkpoint: {summary['last_ckpt']}\n{wandb_line}")
    print(f"pictures: {' '.join(summary['pictures'])}")
    print(f"summary: {path}")
    return 0
