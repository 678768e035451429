"""A callback the benchmark adds to `python train.py` (`--trainer.callbacks+=stopwatch.StopWatch`): wall-clock
times (time.time(), comparable with the parent's clock) of the first step, of every epoch and of every
validation with its val/loss and val/count_nll, and the peak RSS, written as JSON at the end of fit and of test
(train.py leaves through os._exit: no atexit handler runs)."""

import json
import resource
import time

import lightning as L


class StopWatch(L.Callback):
    def __init__(self, out: str = "stopwatch.json") -> None:
        self.out = out
        self.record = {"first_step": None, "epochs": [], "vals": []}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.record["first_step"] is None:
            self.record["first_step"] = time.time()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.epoch_start = time.time()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.record["epochs"].append([self.epoch_start, time.time(), trainer.global_step])

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        self.record["vals"].append([time.time(), float(metrics["val/loss"]), float(metrics["val/count_nll"])])

    def teardown(self, trainer, pl_module, stage) -> None:
        with open(self.out, "w") as f:
            peak_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
            json.dump({**self.record, "exit": time.time(), "peak_rss_kb": peak_rss_kb}, f)
