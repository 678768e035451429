"""Weights & Biases: online or offline (never a prompt or a hang), one W&B run across resumes, and the resolved
config and the data's provenance recorded in it."""

import json
import netrc
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import lightning as L
import wandb
from jsonargparse.typing import restricted_string_type
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from bigram_lightning.run.errors import UserError

Tag = restricted_string_type("Tag", r"^.{1,64}$")  # a W&B tag: --wandb.tags takes no other
# the longest W&B may hold up training: the reachability probe of --wandb.mode auto, and an online wandb.init
PROBE_SECONDS, INIT_SECONDS = 3, 10


def wandb_mode(requested: str) -> str:
    """auto: online with an API key and a reachable server, else offline. online: online if the server is reachable
    (else offline, with a warning), so that a server that never answers costs PROBE_SECONDS, not W&B's own waits
    (its greeting's account lookups alone take 5 s each, and its init up to INIT_SECONDS more)."""
    if requested == "auto" and os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if requested not in ("auto", "online"):
        return requested
    url = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
    try:
        has_key = bool(os.environ.get("WANDB_API_KEY")) or netrc.netrc().authenticators(urlparse(url).hostname)
    except (OSError, netrc.NetrcParseError, TypeError):
        has_key = False
    if requested == "auto" and not has_key:
        return "offline"
    try:  # any HTTP answer will do: a server that accepts connections but never answers counts as unreachable
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=PROBE_SECONDS).close()
    except urllib.error.HTTPError:
        pass
    except (OSError, ValueError) as e:  # no network, no such host, a timeout, a malformed URL
        if requested == "online":
            why = getattr(e, "reason", e)
            print(f"warning: W&B server {url} did not answer ({why}): logging offline instead", file=sys.stderr)
        return "offline"
    return "online"


def wandb_logger(cfg, run_dir: Path, wandb_id: str, quiet: bool) -> WandbLogger:
    """The W&B run of `run_dir`, started now on the first process: online within INIT_SECONDS, or offline."""
    mode = wandb_mode(cfg.mode)
    if cfg.log_model and mode != "online":
        print(f"note: --wandb.log_model: the run is {mode}, so no checkpoint is uploaded", file=sys.stderr)
    if rank_zero_only.rank != 0:  # the other processes never log: Lightning gives them a dummy experiment
        return WandbLogger(project=cfg.project, id=wandb_id, mode=mode)
    init = dict(
        project=cfg.project,
        name=cfg.name or run_dir.name,
        tags=list(cfg.tags),
        id=wandb_id,
        # absolute: W&B's service process outlives a run and resolves relative paths against its own cwd
        dir=str(run_dir.resolve()),
        settings=wandb.Settings(silent=quiet, init_timeout=INIT_SECONDS),
    )
    if wandb.run is not None:  # a run this process left open (main called again after a crash, in a notebook)
        wandb.run.finish()
    run = None
    if mode == "online":
        try:
            run = wandb.init(mode="online", resume="allow", **init)  # (offline, every segment is a new one)
        except Exception as e:  # a bad key, a server that does not answer, …: W&B's own error types vary
            why = (str(e).strip().splitlines() or [type(e).__name__])[0]
            print(f"warning: W&B could not start an online run ({why}): logging offline instead", file=sys.stderr)
            wandb.teardown()  # the service still holds the run id the failed init claimed
            mode = "offline"
    if run is None:
        # W&B's process-wide settings follow WANDB_MODE: offline, its own telemetry then waits on no server at
        # exit (main restores the variable)
        os.environ["WANDB_MODE"] = mode
        try:
            run = wandb.init(mode=mode, **init)
        except wandb.errors.UsageError as e:  # W&B's word for a setting it refuses: an invalid project name, …
            raise UserError(f"W&B refused the run: {e}: fix --wandb.project, --wandb.name or --wandb.tags") from None
    # what WandbLogger does for a run it starts itself: metrics against Lightning's step
    run.define_metric("trainer/global_step")
    run.define_metric("*", step_metric="trainer/global_step", step_sync=True)
    return WandbLogger(experiment=run, log_model=cfg.log_model and mode == "online")


class WandbRun(L.Callback):
    """Keeps the W&B run id in every checkpoint (a checkpoint moved away from its run still resumes the same W&B
    run), and records the resolved config and the data's provenance in the W&B run."""

    def __init__(self, wandb_id: str, config: dict) -> None:
        self.wandb_id, self.config = wandb_id, config

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dm = trainer.datamodule
        if trainer.is_global_zero and isinstance(trainer.logger, WandbLogger):  # (the CLI gives a run one logger)
            data = {
                "file": dm.hparams.data_file,
                "sha256": dm.hparams.data_sha256,
                "vocab": dm.vocab.itos,
                "words": {s: int((dm.streams[s] == 0).sum()) - 1 for s in dm.streams},
                "pairs": {s: dm.num_pairs(s) for s in dm.streams},
            }
            config = json.loads(json.dumps(self.config, default=str))  # config file paths become strings
            trainer.logger.experiment.config.update({"config": config, "data": data}, allow_val_change=True)

    def state_dict(self) -> dict:  # (not loaded back: the resumed run's own run.json holds its id)
        return {"wandb_id": self.wandb_id}
