"""Run directories (`runs/<time>/`), what 'last' means for train.py and the tools alike, and which checkpoint a
`--ckpt_path` / `--ckpt` value names."""

import hashlib
import itertools
import json
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Optional

from bigram_lightning.run.errors import UserError
from bigram_lightning.run.files import shown, write_atomic

RUN_DIR_ENV = "BIGRAM_LIGHTNING_RUN_DIR"  # where the processes DDP starts find the first process's run directory


def newest_run(runs_dir: str) -> Optional[Path]:
    """'last': the run under `runs_dir` started (run.json, config.yaml) or checkpointed most recently, or None."""

    def last_active(run: Path) -> tuple[int, str]:
        files = [run / "run.json", run / "config.yaml", run / "checkpoints" / "last.ckpt"]
        return max((f.stat().st_mtime_ns for f in files if f.exists()), default=0), run.name

    runs = {p.parent for p in Path(runs_dir).glob("*/run.json")}
    runs |= {p.parents[1] for p in Path(runs_dir).glob("*/checkpoints/last.ckpt")}
    return max(runs, key=last_active, default=None)


def find_checkpoint(value: str, runs_dir: str, flag: str = "--ckpt") -> Path:
    """The checkpoint file `value` names: a file; a run directory (its last.ckpt); or 'last', the newest run's."""
    run = newest_run(runs_dir) if value == "last" else Path(value)
    if run is None:
        raise UserError(
            f"{flag} last: no run under {runs_dir}/ has checkpoints/last.ckpt: train first (python train.py), "
            f"or pass --runs_dir or {flag} PATH"
        )
    path = run / "checkpoints" / "last.ckpt" if run.is_dir() else run
    if path.is_file():
        return path
    if value == "last":
        raise UserError(f"{flag} last: the newest run, {run}, has no checkpoint yet: pass {flag} PATH")
    raise UserError(f"{flag} {value}: no such file: pass a checkpoint file, a run directory or 'last'")


def launcher_run_name() -> Optional[str]:
    """Under torchrun or a multi-task SLURM job every rank starts at once: the launcher's job id names the run."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID")
    if run_id == "none":
        raise UserError("under torchrun, pass --rdzv-id ID (the same on every node): it names the run directory")
    if run_id:
        return f"torchrun-{run_id}"
    if "SLURM_PROCID" in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1:  # tasks started by srun
        return f"slurm-{os.environ['SLURM_JOB_ID']}.{os.environ.get('SLURM_STEP_ID', '0')}"
    return None


def run_dir_for(runs_dir: str, ckpt_path: Optional[str]) -> tuple[Path, bool]:
    """(the run directory, whether this command starts it): the resumed run's, one named by the launcher's job id,
    or a new one named by the time, claimed by making it, so that runs started in the same second (a sweep) never
    share one."""
    if os.environ.get(RUN_DIR_ENV):
        return Path(os.environ[RUN_DIR_ENV]), False
    if ckpt_path is not None:
        run_dir = Path(ckpt_path).resolve().parents[1]
        if (run_dir / "run.json").is_file():
            return run_dir, False
    name = launcher_run_name()
    runs = Path(runs_dir).absolute()  # (a resumed run's is absolute too: the same directory, written the same way)
    if name is not None:
        return runs / name, not (runs / name / "run.json").is_file()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in itertools.count(1):
        run_dir = runs / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            run_dir.mkdir(parents=True)
            return run_dir, True
        except FileExistsError:
            continue
        except OSError as e:  # a file in the way, a read-only place, no permission
            raise UserError(
                f"--runs_dir {runs_dir}: cannot make {shown(run_dir)} ({e.strerror}): pass a writable directory"
            ) from None


def open_run(run_dir: Path, new: bool, restart: bool, wandb_id: Optional[str], config: Optional[str]) -> dict:
    """Make or reopen the run directory and return its run.json. A new run's W&B id is the resumed checkpoint's,
    one derived from the launcher's job id (the same on every rank), or a random one. config.yaml is written at
    every start, whole, so that a run killed at any later moment can start again from it (None: another process
    writes it)."""
    name = launcher_run_name()
    if new:
        if wandb_id is None:
            wandb_id = hashlib.sha256(name.encode()).hexdigest()[:8] if name else secrets.token_hex(4)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(run_dir / "run.json", (json.dumps({"wandb_id": wandb_id}) + "\n").encode())
    if restart:  # a best.ckpt saved just before the kill, ahead of last.ckpt: the run writes it again
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    for var, sub in (("WANDB_CACHE_DIR", "cache"), ("WANDB_DATA_DIR", "data")):  # W&B writes inside the run too
        os.environ.setdefault(var, str((run_dir / "wandb" / sub).resolve()))  # (a user's own setting wins)
    if config is not None:
        write_atomic(run_dir / "config.yaml", config.encode())
    return json.loads((run_dir / "run.json").read_text())


def resume_target(ckpt_path: str, runs_dir: str) -> tuple[Optional[Path], Path]:
    """(the checkpoint to resume, its run directory). When 'last' was stopped before its first checkpoint, the
    checkpoint is None: the run is trained again from the start, with its config.yaml."""
    run = newest_run(runs_dir) if ckpt_path == "last" else None
    if run is None or (run / "checkpoints" / "last.ckpt").is_file():
        path = find_checkpoint(ckpt_path, runs_dir, flag="--ckpt_path")
        return path, path.resolve().parents[1]
    if not (run / "config.yaml").is_file():
        raise UserError(
            f"--ckpt_path last: the newest run, {run}, was stopped while starting, before it saved its config.yaml: "
            "start it anew with its flags, or pass --ckpt_path PATH to resume another run"
        )
    return None, run
