"""The project against the notebooks' plain PyTorch loop, side by side: `python benchmarks/bench.py`.

Sections (all by default; `--only` picks some):
  throughput  training steps/s and pairs/s of the Trainer and of plain loops, same data, device and batch size
  endtoend    the issue's measure: the whole default `python train.py` (W&B offline as without a key, the pictures
              drawn) against the anchor as a user runs it (`python ../shared/bench/recipe_to_target.py
              data/names.txt 0.01`, default threads), in alternating pairs (--pairs); the ratio's median and the
              phases of train.py's runs (summary.json); and once the anchor with one thread, as train.py pins it
  quality     seconds from process start to val/loss within 0.01 of the count model: the notebooks' recipe
              (benchmarks/recipe.py) against the default `python train.py`
  sampling    names/s of core.sampling.sample_names against the notebooks' last cell (a one-hot matmul per character)
  scale       corpora of 1M, 10M and 100M characters drawn from a seeded Markov chain (the count model of
              names.txt): encoding MB/s, and a one-epoch `python train.py` run: epoch time and peak RSS
Prints a table and writes it as JSON (--out). A benchmark, not a test: nothing here fails on a slow machine.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bigram_lightning.core.counts import count_logprobs  # noqa: E402
from bigram_lightning.core.sampling import sample_names  # noqa: E402
from bigram_lightning.core.vocab import Vocab  # noqa: E402
from bigram_lightning.datafile import WordFileDataModule  # noqa: E402

LOG_EVERY = 10  # train.py's setting
NAMES = Path(os.environ.get("BIGRAM_NAMES_TXT", REPO.parent / "shared" / "data" / "names.txt"))
if not NAMES.is_file():
    NAMES = REPO / "data" / "names.txt"


def env1() -> dict:
    """Child processes: one intra-op thread (the project's default, and the same for both sides), W&B offline."""
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "PYTHONPATH": f"{REPO / 'benchmarks'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }


# ---------------------------------------------------------------------------------------------- throughput
def plain_loop(xs, ys, batch_size, epochs, notebook: bool) -> tuple[int, float]:
    """(steps, seconds) of the plain loop. notebook: the notebooks' cells as written (F.one_hot(...).float(),
    exp, normalise, pluck, log, mean, `W.data += -lr * W.grad`); else a tuned plain loop (scatter one-hot,
    F.cross_entropy, torch.optim.SGD with train.py's momentum 0.9)."""
    n, V, device = len(xs), 27, xs.device
    W = torch.randn((V, V), generator=torch.Generator().manual_seed(2147483647)).to(device).requires_grad_()
    sgd = torch.optim.SGD([W], lr=0.1, momentum=0.9)
    steps, start = 0, time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch)) if batch_size < n else None
        order = None if order is None else order.to(device)
        for i in range(0, n, batch_size):
            bx, by = (xs, ys) if order is None else (xs[order[i : i + batch_size]], ys[order[i : i + batch_size]])
            if notebook:
                xenc = F.one_hot(bx.long(), num_classes=V).float()
                counts = (xenc @ W).exp()
                probs = counts / counts.sum(1, keepdims=True)
                loss = -probs[torch.arange(len(by)), by.long()].log().mean()
            else:
                xenc = torch.zeros(len(bx), V, device=device).scatter_(1, bx.long().unsqueeze(1), 1.0)
                loss = F.cross_entropy(xenc @ W, by.long())
            W.grad = None
            loss.backward()
            if notebook:
                W.data += -0.1 * W.grad
            else:
                sgd.step()
            steps += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps, time.perf_counter() - start


def trainer_loop(dm, batch_size, epochs, device: str = "cpu") -> tuple[int, float]:
    """(steps, seconds) of the project's Trainer: BigramLM and BigramDataModule as train.py builds them
    (Adam, one-hot rows built on the device), timed over the training epochs after the first (no validation)."""
    import lightning as L

    from bigram_lightning.core.model import BigramLM

    class Timer(L.Callback):
        seconds, steps = 0.0, 0

        def on_train_epoch_start(self, trainer, pl_module):
            self.start, self.step0 = time.perf_counter(), trainer.global_step

        def on_train_epoch_end(self, trainer, pl_module):
            if trainer.current_epoch > 0:  # the first epoch warms up
                self.seconds += time.perf_counter() - self.start
                self.steps += trainer.global_step - self.step0

    dm.batch_size = batch_size  # (pairs mode, the notebooks' data, as the default run on names.txt)
    dm.mode = "pairs"
    timer = Timer()
    trainer = L.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        max_epochs=epochs + 1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[timer],
        log_every_n_steps=LOG_EVERY,
    )
    trainer.fit(BigramLM(vocab=dm.vocab.itos), datamodule=dm)
    return timer.steps, timer.seconds


def throughput(args) -> dict:
    dm = WordFileDataModule(path=str(NAMES), cache_dir=str(args.workdir / "cache"))
    dm.setup("fit")
    stream = dm.streams["train"]
    xs, ys = stream[:-1].to(args.device), stream[1:].to(args.device)
    n = len(xs)
    out = {}
    for label, batch_size, epochs in (("full batch", n, args.full_steps), ("batch 4096", 4096, args.epochs_4096)):
        plain_loop(xs, ys, batch_size, 1, True)  # warm-up
        rows = {
            "notebook loop": plain_loop(xs, ys, batch_size, epochs, notebook=True),
            "tuned plain loop": plain_loop(xs, ys, batch_size, epochs, notebook=False),
            "Trainer": trainer_loop(dm, batch_size, epochs, args.device),
        }
        per_step = {k: (steps / sec, steps / sec * min(batch_size, n)) for k, (steps, sec) in rows.items()}
        out[label] = {
            k: {
                "steps_per_s": s,
                "pairs_per_s": p,
                "ratio_vs_notebook": s / per_step["notebook loop"][0],
                "ratio_vs_tuned": s / per_step["tuned plain loop"][0],
            }
            for k, (s, p) in per_step.items()
        }
    return out


# ------------------------------------------------------------------------------------------ end to end
ANCHOR = REPO.parent / "shared" / "bench" / "recipe_to_target.py"


def endtoend(args) -> dict:
    """Wall time, process start to exit, of the anchor and of `python train.py`, both as users run them: the
    environment as it is, minus W&B credentials (HOME is a fresh directory) and thread settings."""
    if not ANCHOR.is_file():
        print(f"endtoend: skipped, no anchor at {ANCHOR}", file=sys.stderr)
        return {}
    work = args.workdir / "endtoend"
    shutil.rmtree(work, ignore_errors=True)
    (work / "data").mkdir(parents=True)
    shutil.copy(NAMES, work / "data" / "names.txt")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "OMP_"))} | {"HOME": str(work)}

    def wall(cmd: list, **extra_env) -> tuple[float, str]:
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=work, env=env | extra_env, capture_output=True, text=True, check=True)
        return time.perf_counter() - start, proc.stdout

    pairs = []
    for _ in range(args.pairs):
        anchor_s, _ = wall([sys.executable, str(ANCHOR), "data/names.txt", "0.01"])
        train_s, out = wall([sys.executable, str(REPO / "train.py")])
        summary = json.loads((work / out.strip().splitlines()[-1].removeprefix("summary: ")).read_text())
        keys = ("val_loss", "val_count_nll", "phases", "global_step")
        pairs.append(
            {"anchor_s": anchor_s, "train_py_s": train_s, "ratio": train_s / anchor_s} | {k: summary[k] for k in keys}
        )
    ratios = sorted(p["ratio"] for p in pairs)
    # train.py pins one intra-op thread (unless OMP_NUM_THREADS says otherwise): the anchor that way too, once
    one_thread_s, _ = wall([sys.executable, str(ANCHOR), "data/names.txt", "0.01"], OMP_NUM_THREADS="1")
    return {"pairs": pairs, "median_ratio": ratios[len(ratios) // 2], "anchor_one_thread_s": one_thread_s}


# ------------------------------------------------------------------------------------------ time to quality
def quality(args) -> dict:
    work = Path(tempfile.mkdtemp(dir=args.workdir))
    (work / "data").mkdir()
    shutil.copy(NAMES, work / "data" / "names.txt")
    start = time.time()
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "recipe.py"), str(NAMES)],
        env=env1(),
        capture_output=True,
        text=True,
        check=True,
    )
    recipe = json.loads(proc.stdout)
    recipe_out = {
        "steps": recipe["steps"],
        "start_to_target_s": recipe["target"] - start,
        "train_to_target_s": recipe["target"] - recipe["first_step"],
    }
    start = time.time()
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            "--trainer.callbacks+=stopwatch.StopWatch",
            f"--trainer.callbacks.out={work / 'stopwatch.json'}",
        ],
        cwd=work,
        env=env1(),
        capture_output=True,
        text=True,
    )
    end = time.time()
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    watch = json.loads((work / "stopwatch.json").read_text())
    hit = next((t for t, loss, count in watch["vals"] if loss - count <= 0.01), None)
    steps_per_epoch = watch["epochs"][0][2]
    epoch_hit = next((i for i, (t, loss, count) in enumerate(watch["vals"]) if loss - count <= 0.01), None)
    train_py = {
        "steps": None if epoch_hit is None else (epoch_hit + 1) * steps_per_epoch,
        "start_to_target_s": None if hit is None else hit - start,
        "train_to_target_s": None if hit is None else hit - watch["first_step"],
        "start_to_exit_s": end - start,
        "final_val_gap": watch["vals"][-1][1] - watch["vals"][-1][2],
    }
    shutil.rmtree(work, ignore_errors=True)
    return {"recipe": recipe_out, "train.py": train_py}


# ------------------------------------------------------------------------------------------------- sampling
def count_probs(args) -> tuple[torch.Tensor, Vocab]:
    dm = WordFileDataModule(path=str(NAMES), cache_dir=str(args.workdir / "cache"))
    dm.setup("fit")
    return count_logprobs(dm.counts["train"]).exp().float(), dm.vocab


def sampling(args) -> dict:
    P, vocab = count_probs(args)
    W = P.log()  # a trained net's W: softmax(W) is the count model's P
    # the notebook's last cell: one name at a time, the net run on one one-hot character per step
    g = torch.Generator().manual_seed(2147483647)
    start, names = time.perf_counter(), 0
    while time.perf_counter() - start < args.loop_seconds:
        out, ix = [], 0
        while True:
            xenc = F.one_hot(torch.tensor([ix]), num_classes=27).float()
            counts = (xenc @ W).exp()
            p = counts / counts.sum(1, keepdims=True)
            ix = torch.multinomial(p, num_samples=1, replacement=True, generator=g).item()
            out.append(vocab.itos[ix])
            if ix == 0:
                break
        names += 1
    loop = names / (time.perf_counter() - start)
    # the project: SampleNames' and bigram-sample's path, softmax(W) once, then the same one-at-a-time draws
    g = torch.Generator().manual_seed(2147483647)
    start = time.perf_counter()
    project_names = sample_names(W.softmax(1), args.num_samples, g, vocab)
    project = len(project_names) / (time.perf_counter() - start)
    return {
        "notebook_names_per_s": loop,
        "project_names_per_s": project,
        "ratio": project / loop,
        "num": args.num_samples,
    }


# ---------------------------------------------------------------------------------------------------- scale
def markov_corpus(path: Path, chars: int, P: torch.Tensor, vocab: Vocab, seed: int = 1) -> None:
    """Names drawn from the Markov chain P (seeded), one per line, until `chars` characters (with newlines)."""
    g = torch.Generator().manual_seed(seed)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        written = 0
        while written < chars:
            text = "\n".join(n for n in markov_names(P, 500_000, g, vocab) if n) + "\n"
            text = text[: chars - written]
            f.write(text)
            written += len(text)
    os.replace(tmp, path)


def markov_names(P: torch.Tensor, num: int, g: torch.Generator, vocab: Vocab, max_len: int = 30) -> list[str]:
    """`num` names at once (fast, not the notebook's order of draws): each step draws every name's next character
    with one batched torch.multinomial; a name that has ended keeps drawing boundaries."""
    ix = torch.zeros(num, dtype=torch.long)
    columns = []
    for _ in range(max_len):
        ix = torch.multinomial(P[ix], 1, replacement=True, generator=g).squeeze(1) * (ix != 0 if columns else 1)
        columns.append(ix)
    ids = torch.stack(columns, 1).tolist()
    return [vocab.decode(row).split(".")[0] for row in ids]


def scale(args) -> dict:
    P, vocab = count_probs(args)
    out = {}
    for chars in args.sizes:
        corpus = args.workdir / f"markov-{chars}.txt"
        if not corpus.exists():
            markov_corpus(corpus, chars, P, vocab)
        work = Path(tempfile.mkdtemp(dir=args.workdir))
        # encoding, in a fresh process as a first run would: hash + two passes over the file + the cache write
        code = (
            "import sys, time; from pathlib import Path; from bigram_lightning.corpus import load_corpus; "
            f"t = time.perf_counter(); load_corpus({str(corpus)!r}, {str(work / 'cache')!r}); "
            "print(time.perf_counter() - t)"
        )
        encode_s = float(
            subprocess.run(
                [sys.executable, "-c", code], env=env1(), capture_output=True, text=True, check=True, cwd=REPO
            ).stdout
        )
        start = time.time()
        proc = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "train.py"),
                "--data.path",
                str(corpus),
                "--data.cache_dir",
                str(work / "cache"),
                "--max_epochs",
                "1",
                "--logger",
                "none",
                "--trainer.enable_progress_bar",
                "false",
                "--trainer.callbacks+=stopwatch.StopWatch",
                f"--trainer.callbacks.out={work / 'stopwatch.json'}",
            ],
            cwd=work,
            env=env1(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(stderr[-3000:])
        watch = json.loads((work / "stopwatch.json").read_text())
        epoch_start, epoch_end, steps = watch["epochs"][0]
        out[f"{chars / 1e6:g}M"] = {
            "chars": chars,
            "encode_s": encode_s,
            "encode_MB_per_s": corpus.stat().st_size / 1e6 / encode_s,
            "epoch_s": epoch_end - epoch_start,
            "steps": steps,
            "run_s": time.time() - start,
            "peak_rss_MB": peak_rss_mb(work / "stopwatch.json"),
        }
        shutil.rmtree(work, ignore_errors=True)
    return out


def peak_rss_mb(stopwatch: Path) -> float:
    return json.loads(stopwatch.read_text())["peak_rss_kb"] / 1024


# ---------------------------------------------------------------------------------------------------- table
def table(results: dict) -> str:
    lines = []
    if "throughput" in results:
        lines.append(
            f"{'training throughput (--device)':40}{'steps/s':>10}{'pairs/s':>12}{'×notebook':>11}{'×tuned':>9}"
        )
        for label, rows in results["throughput"].items():
            for name, r in rows.items():
                lines.append(
                    f"  {label + ', ' + name:38}{r['steps_per_s']:>10.1f}{r['pairs_per_s']:>12.3g}"
                    f"{r['ratio_vs_notebook']:>11.2f}{r['ratio_vs_tuned']:>9.2f}"
                )
    if results.get("endtoend"):
        e = results["endtoend"]
        lines.append(f"{'whole command, wall s':40}{'anchor':>10}{'train.py':>10}{'ratio':>8}  train.py phases (s)")
        for i, r in enumerate(e["pairs"]):
            phases = ", ".join(f"{k} {v:.2f}" for k, v in r["phases"].items())
            lines.append(
                f"  pair {i + 1:<33}{r['anchor_s']:>10.2f}{r['train_py_s']:>10.2f}{r['ratio']:>8.2f}  {phases}"
            )
        lines.append(
            f"  median ratio {e['median_ratio']:.2f} (target 0.8); val_loss - val_count_nll "
            f"{e['pairs'][-1]['val_loss'] - e['pairs'][-1]['val_count_nll']:.4f}"
        )
        lines.append(f"  the anchor with OMP_NUM_THREADS=1 (train.py's own setting): {e['anchor_one_thread_s']:.2f} s")
    if "quality" in results:
        q = results["quality"]
        title = f"{'time to val/loss within 0.01 of count':40}{'steps':>10}"
        lines.append(f"{title}{'start→hit s':>12}{'train→hit s':>12}{'exit s':>8}")
        for name, r in q.items():
            fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
            lines.append(
                f"  {name:38}{str(r['steps']):>10}{fmt(r['start_to_target_s']):>12}"
                f"{fmt(r['train_to_target_s']):>12}{fmt(r.get('start_to_exit_s')):>8}"
            )
        if q["train.py"]["train_to_target_s"]:
            ratio = q["train.py"]["train_to_target_s"] / q["recipe"]["train_to_target_s"]
            lines.append(f"  train.py training phase / recipe's: {ratio:.3f}")
    if "sampling" in results:
        s = results["sampling"]
        lines.append(
            f"sampling: notebook loop {s['notebook_names_per_s']:.0f} names/s, project ({s['num']} names) "
            f"{s['project_names_per_s']:.0f} names/s = {s['ratio']:.1f}×"
        )
    if "scale" in results:
        lines.append(
            f"{'corpus':10}{'encode s':>10}{'MB/s':>8}{'epoch s':>10}{'steps':>8}{'run s':>8}{'peak RSS MB':>13}"
        )
        for name, r in results["scale"].items():
            lines.append(
                f"{name:10}{r['encode_s']:>10.2f}{r['encode_MB_per_s']:>8.0f}{r['epoch_s']:>10.1f}"
                f"{r['steps']:>8}{r['run_s']:>8.1f}{r['peak_rss_MB']:>13.0f}"
            )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="endtoend,throughput,quality,sampling,scale", help="comma-separated sections")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the throughput section runs")
    p.add_argument("--pairs", type=int, default=3, help="alternating anchor/train.py pairs of the endtoend section")
    p.add_argument("--out", default="runs/benchmark.json", help="where the JSON goes")
    p.add_argument("--workdir", default="runs/benchmark", help="generated corpora and caches (reused)")
    p.add_argument("--sizes", default="1000000,10000000,100000000", help="corpus sizes in characters")
    p.add_argument("--full-steps", type=int, default=30, help="full-batch steps timed")
    p.add_argument("--epochs-4096", type=int, default=4, help="epochs timed at batch 4096")
    p.add_argument("--num-samples", type=int, default=20_000, help="names sampled by the project")
    p.add_argument("--loop-seconds", type=float, default=2.0, help="seconds the notebook's sampling loop runs")
    args = p.parse_args()
    args.workdir = Path(args.workdir).resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    args.sizes = [int(s) for s in args.sizes.split(",")]
    torch.set_num_threads(1)  # as train.py: the same setting on both sides of every comparison
    sections = {
        "endtoend": endtoend,
        "throughput": throughput,
        "quality": quality,
        "sampling": sampling,
        "scale": scale,
    }
    results = {}
    for name in args.only.split(","):
        results[name] = sections[name](args)
    print(table(results))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
