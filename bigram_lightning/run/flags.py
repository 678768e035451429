"""train.py's own flags (beside the model's, the data's and the Trainer's): their types, defaults and help."""

from typing import Literal, Optional, Union

from jsonargparse.typing import NonNegativeInt

from bigram_lightning.core.model import Seed
from bigram_lightning.run.tracking import Tag

# the project's own flags, and the Trainer flags that also work without the `trainer.` prefix (`--accelerator gpu`)
FLAGS = {
    "seed": (Seed, 2147483647, "seeds W's initialisation, the split, the batch order and the samples"),
    "ckpt_path": (Optional[str], None, "resume: 'last' (the newest run), a run directory or a checkpoint"),
    "checkpoint_every_n_steps": (NonNegativeInt, 0, "also save last.ckpt every N steps"),
    "runs_dir": (str, "runs", "one directory per run"),
    "logger": (Literal["wandb", "csv", "none"], "wandb", "where metrics go: W&B, metrics.csv or none"),
    "pictures": (bool, True, "draw the bigram grid and the loss curve at the end"),
    "early_stopping": (bool, True, "stop once val NLL stops improving"),
    "wandb.project": (str, "bigram-lightning", "W&B project"),
    "wandb.mode": (Literal["auto", "online", "offline", "disabled"], "auto", "auto: online with a key and a server"),
    "wandb.name": (Optional[str], None, "W&B run name (null: the run directory's)"),
    "wandb.tags": (list[Tag], [], "W&B tags of 1 to 64 characters, as in --wandb.tags '[a, b]'"),
}
SHORTCUTS = {
    "accelerator": (str, "auto", "cpu, gpu, mps, auto (the best available), …"),
    "devices": (Union[int, str, list[int]], "auto", "how many devices (or which) to train on"),
    "strategy": (str, "auto", "auto, ddp, …: how the devices share the work"),
    "num_nodes": (int, 1, "machines"),
    "precision": (Optional[str], None, "32-true (default), bf16-mixed, 16-mixed, 64-true"),
    "max_epochs": (Optional[int], None, "exactly N epochs"),
}
SWITCHES = {
    "wandb.log_model": "online runs: upload the checkpoints to W&B at the end",
    "quiet": "for logs and CI: the final table and errors only",
}


TRAINER_DEFAULTS = {
    "use_distributed_sampler": False,
    "num_sanity_val_steps": 0,
    "log_every_n_steps": 10,
    "max_steps": 200,  # model.decay_steps: the lr has fallen to its last value
}
VAL_EVERY = 25  # steps between validations, at most (full-batch runs: every step)
PATIENCE = 20  # early stopping's patience in steps, at least (2 validations' worth when they are further apart)
