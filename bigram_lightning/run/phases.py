"""Where a run's seconds went: consecutive, disjoint phases from the process's start to the moment summary.json is
written, so that they add up to its `seconds`."""

import time

import lightning as L
import psutil

# each phase ends at its mark: imports (process start → main), startup (→ the first training step; the data's
# reading apart), train (→ the end of training: steps, validation, samples, checkpoints), pictures (→ fit returns),
# test (→ the test's result), finish (→ summary.json: the count models' NLLs, W&B's finish)
PHASES = ("imports", "startup", "train", "pictures", "test", "finish")


def process_started() -> float:
    """When this process started, on time.time()'s clock."""
    return psutil.Process().create_time()


class PhaseClock(L.Callback):
    def __init__(self, start: float, imported: float) -> None:
        self.start = start
        self.marks = {"imports": imported}

    def mark(self, phase: str) -> None:
        self.marks.setdefault(phase, time.time())

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        self.mark("startup")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.mark("train")

    def phases(self, data_seconds: float) -> dict[str, float]:
        """Seconds per phase, `data` (the word file read and split, inside start-up) apart; a phase that never
        ended (no training step) is 0 and its time goes to the next. Call after mark('finish')."""
        seconds = {}
        last = self.start
        for phase in PHASES:
            end = max(self.marks.get(phase, last), last)
            seconds[phase] = end - last
            last = end
        data = min(data_seconds, seconds["startup"])
        seconds["startup"] -= data
        return {"imports": seconds["imports"], "startup": seconds["startup"], "data": data} | {
            phase: seconds[phase] for phase in PHASES[2:]
        }

    def total(self) -> float:
        """Seconds from the process's start to the last mark."""
        return max(self.marks.values()) - self.start
