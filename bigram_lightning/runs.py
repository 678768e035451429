"""Run directories: a new one per run, `runs/<time>/`; which run 'last' means (the same for train.py and the
tools); and which checkpoint a `--ckpt_path` / `--ckpt` value names."""

import hashlib
import json
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Optional

from bigram_lightning.errors import UserError
from bigram_lightning.files import write_atomic

# DDP starts this command again once per extra device: they find the run directory of the first process here
RUN_DIR_ENV = "BIGRAM_LIGHTNING_RUN_DIR"


def newest_run(runs_dir: str) -> Optional[Path]:
    """'last': the run under `runs_dir` that was started (config.yaml is written at every start) or saved its
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


def find_checkpoint(value: str, runs_dir: str, flag: str = "--ckpt") -> Path:
    """The checkpoint file `value` names: a file; a run directory (its last.ckpt); or 'last', the newest run's."""
    if value == "last":
        run = newest_run(runs_dir)
        if run is None:
            raise UserError(
                f"{flag} last: no run under {runs_dir}/ has checkpoints/last.ckpt: train first (python train.py), "
                f"or pass --runs_dir or {flag} PATH"
            )
        path = run / "checkpoints" / "last.ckpt"
        if not path.is_file():
            raise UserError(f"{flag} last: the newest run, {run}, has no checkpoint yet: pass {flag} PATH")
        return path
    path = Path(value)
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise UserError(f"{flag} {value}: no such file: pass a checkpoint file, a run directory or 'last'")
    return path


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


def run_dir_for(runs_dir: str, ckpt_path: Optional[str]) -> tuple[Path, bool]:
    """The run directory: the resumed run's, or a new one (returned as (path, True), not yet made) named by the
    time, or by the launcher's job id."""
    if os.environ.get(RUN_DIR_ENV):
        return Path(os.environ[RUN_DIR_ENV]), False
    if ckpt_path is not None:
        run_dir = Path(os.path.relpath(Path(ckpt_path).resolve().parent.parent))
        if (run_dir / "run.json").is_file():
            return run_dir, False
    name = launcher_run_name()
    if name is not None:
        return Path(runs_dir) / name, not (Path(runs_dir) / name / "run.json").is_file()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir, n = Path(runs_dir) / stamp, 1
    while run_dir.exists():
        n += 1
        run_dir = run_dir.with_name(f"{stamp}-{n}")
    return run_dir, True


def open_run(run_dir: Path, new: bool, restart: bool, wandb_id: Optional[str], config: Optional[str]) -> dict:
    """Make a new run directory, or reopen one, and return its run.json. A new run's W&B id is a resumed
    checkpoint's, one derived from the launcher's job id (the same on every rank), or a random one (runs of two
    users never collide). config.yaml is written at every start, at once and whole: a run killed at any later
    moment can be started again from it (None: another process writes it)."""
    name = launcher_run_name()
    if new:
        if wandb_id is None:
            wandb_id = hashlib.sha256(name.encode()).hexdigest()[:8] if name else secrets.token_hex(4)
        run_dir.mkdir(parents=True, exist_ok=name is not None)
        write_atomic(run_dir / "run.json", (json.dumps({"wandb_id": wandb_id}) + "\n").encode())
    if restart:  # a best.ckpt saved just before the kill, ahead of last.ckpt: the run writes it again
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    for var, sub in (("WANDB_CACHE_DIR", "cache"), ("WANDB_DATA_DIR", "data")):  # W&B writes inside the run too
        os.environ.setdefault(var, str((run_dir / "wandb" / sub).resolve()))  # (a user's own setting wins)
    if config is not None:
        write_atomic(run_dir / "config.yaml", config.encode())
    return json.loads((run_dir / "run.json").read_text())


def resume_target(ckpt_path: str, runs_dir: str) -> tuple[Optional[Path], Path]:
    """(the checkpoint to resume, the run directory whose config.yaml the run takes). 'last' means the newest run;
    when it was stopped before its first checkpoint, the checkpoint is None: it is trained again from the start."""
    run = newest_run(runs_dir) if ckpt_path == "last" else None
    if run is None or (run / "checkpoints" / "last.ckpt").is_file():
        path = find_checkpoint(ckpt_path, runs_dir, flag="--ckpt_path")
        return path, path.resolve().parent.parent
    if not (run / "config.yaml").is_file():
        raise UserError(
            f"--ckpt_path last: the newest run, {run}, was stopped while starting, before it saved its config.yaml: "
            "start it anew with its flags, or pass --ckpt_path PATH to resume another run"
        )
    return None, run
