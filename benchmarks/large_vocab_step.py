"""Seconds per training step at a large vocabulary (a CJK word list: V = 3,001, batch 4096), the project's
sparse one-hot step against the dense one-hot matmul it equals, at the project's default thread count (1;
OMP_NUM_THREADS overrides).

    python benchmarks/large_vocab_step.py [--vocab 3001] [--batch 4096] [--steps 20]
"""

import argparse
import os
import time

import torch
import torch.nn.functional as F

from bigram_lightning.core.data import one_hot
from bigram_lightning.core.model import BigramLM


def seconds_per_step(step, W: torch.nn.Parameter, steps: int) -> float:
    optimizer = torch.optim.SGD([W], lr=1.0, momentum=0.9)
    for i in range(steps + 5):  # five warm-up steps: the allocator settles (a training run's steady state)
        if i == 5:
            start = time.perf_counter()
        optimizer.zero_grad()
        step().backward()
        optimizer.step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocab", type=int, default=3001)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args()
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)  # as train.py does
    V, B = args.vocab, args.batch
    model = BigramLM(vocab="." + "".join(chr(0x4E00 + i) for i in range(V - 1)))
    g = torch.Generator().manual_seed(0)
    xs = torch.randint(V, (B,), generator=g)
    ys = torch.randint(V, (B,), generator=g)
    ours = seconds_per_step(lambda: model._shared_step((one_hot(xs, V), ys), "val")["loss"], model.W, args.steps)
    W = torch.nn.Parameter(model.W.detach().clone())
    dense = seconds_per_step(lambda: F.cross_entropy(F.one_hot(xs, V).float() @ W, ys), W, args.steps)
    print(
        f"V = {V}, batch {B}, {torch.get_num_threads()} thread(s): the project's step {ours:.4f} s, "
        f"the dense one-hot matmul {dense:.4f} s ({dense / ours:.1f}×)"
    )


if __name__ == "__main__":
    main()
