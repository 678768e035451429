"""README.md's examples of what the programs print, made by running them: `python docs/readme_examples.py` rewrites
every block between `<!-- example: NAME -->` and `<!-- /example -->` with what the code prints now; `--check`
rewrites nothing, prints a unified diff and exits 1 when a block differs.

The commands run as a user runs them, in a fresh temporary directory (a copy of makemore's names.txt in data/,
W&B offline, HOME inside it so that no W&B credentials are used): `python train.py` once, and the tools on its run.
The one-line refusals of the table in "When things go wrong" are made in one process that calls train.py's main
per case (a process each would take minutes), with stand-ins where the real cause cannot be made on demand (no
network, a full disk, a SIGTERM at a given step). What varies from run to run (the run directory's time, W&B's
run id, the temporary directory) is printed as one fixed value."""

import argparse
import contextlib
import difflib
import errno
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
HINT = "run python docs/readme_examples.py to regenerate"
MAKEMORE_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"  # the README's numbers are its
BLOCK = re.compile(r"(<!-- example: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /example -->)", re.S)
OPENING = re.compile(r"<!-- example: ([^ ]*) -->")
# printed in place of what differs between runs: the run directory's time, W&B's offline directory and run id
STAMP = "20261206-120000"
WANDB_RUN = "offline-run-20261206_120000-1a2b3c4d"
TRAINED = "end-of-run"  # the example whose directory holds the default run, which the tools' examples read
MISSING = object()  # (a stand-in for an attribute the object inherits is removed again, not left behind)


@dataclass(frozen=True)
class Shell:
    """Command lines run by bash one after another, each printing its stdout: as a `session` (each `$ command`
    line, then what it printed) or its `output` alone. `after`: run in that example's directory once it has run
    (where `python train.py` trained), else in a fresh one."""

    commands: tuple[str, ...]
    show: str = "session"
    after: str = ""


@dataclass(frozen=True)
class Case:
    """One `python train.py ARGV`, run in-process in a directory of its own (names.txt in data/; the default run
    in runs/ when `trained`): `setup` makes its inputs there, `patch` gives (object, attribute, value) stand-ins
    for what cannot be made for real. `what` and `note` are the table's words before and after its lines."""

    argv: tuple[str, ...]
    what: str = ""
    note: str = ""
    setup: Optional[Callable[[], None]] = None
    patch: Optional[Callable[[], list]] = None
    trained: bool = False
    code: int = 2  # the exit code the README promises


@dataclass(frozen=True)
class InProcess:
    """Cases whose stderr lines are shown as a markdown `table` (input, what you see) or as `output`."""

    cases: tuple[Case, ...]
    show: str = "table"


# ---- the inputs of the refusals (each runs in its case's directory, the working directory) ----


def names(n: int) -> list[str]:
    return Path("data/names.txt").read_text().splitlines()[:n]


def write(path: str, data: bytes) -> Callable[[], None]:
    return lambda: Path(path).write_bytes(data)


def directory() -> None:
    Path("words").mkdir()


def fifo() -> None:
    os.mkfifo("pipe")


def words_txt() -> None:
    Path("w.txt").write_text("\n".join(names(600)) + "\n")
    Path("words.txt").write_text("\n".join(names(600)) + "\n")


def nul_byte() -> None:
    Path("w.txt").write_bytes(("\n".join(names(30)) + "\nbo\x00b\n" + "\n".join(names(600))).encode())


def ten_mb_line() -> None:
    Path("w.txt").write_bytes(("\n".join(names(4)) + "\n" + "a" * 10_000_000 + "\n").encode())


def no_line_break() -> None:
    Path("w.txt").write_bytes(("\n".join(names(600)) + "\n").encode() + b"abc " * 5_000_000)


def boundary_in_a_word() -> None:
    Path("w.txt").write_text("\n".join(names(6) + ["", " st.john"] + names(600)[6:]) + "\n")


def cjk() -> None:
    """50,000 distinct characters (CJK Extension B onwards, none of which NFC changes), three a line."""
    chars = [chr(0x20000 + i) for i in range(50_000)]
    lines = ("".join(chars[i : i + 3]) for i in range(0, len(chars), 3))
    Path("cjk.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def configs() -> None:
    Path("broken.yaml").write_text("model:\n  lr: [1,\n")
    Path("list.yaml").write_text("- 1\n- 2\n")
    Path("typo.yaml").write_text("model:\n  lrr: 3\n")


def the_run() -> Path:
    return next(Path("runs").iterdir())


def truncated() -> None:
    last = the_run() / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # as a crash in the middle of a save leaves it


class Payload:
    """What a hostile pickle holds: loading it without weights_only would run a command (a harmless one here)."""

    def __reduce__(self):
        return (os.system, ("true",))


def evil() -> None:
    import torch

    torch.save({"state_dict": {}, "hyper_parameters": {"vocab": ".a"}, "x": Payload()}, "evil.ckpt")


def abc() -> None:
    Path("abc.txt").write_text("\n".join(["abc", "cab", "bca", "acb", "bac", "cba"] * 20) + "\n")


def without_names_txt() -> None:
    Path("data/names.txt").unlink()


def edited() -> None:
    path = Path("data/names.txt")
    path.write_text(path.read_text() + "zzyzx\n")  # (a copy of its own in this case's directory)


# ---- the stand-ins: what cannot be made on demand ----


def no_permission() -> list:
    """As root, chmod 000 leaves a file readable: open() says no instead."""
    import builtins

    from bigram_lightning import corpus

    def refuse(file, *args, **kwargs):
        if Path(file).name == "w.txt":
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return builtins.open(file, *args, **kwargs)

    return [(corpus, "open", refuse)]


def sixteen_gb() -> list:
    """16 GB of memory free, whatever this machine has free now (the line would change from run to run)."""
    from bigram_lightning import datafile

    return [(datafile, "available_memory", lambda: 16e9)]


def no_gpu() -> list:
    import torch

    return [(torch.cuda, "is_available", lambda: False), (torch.version, "cuda", None)]


def offline_without_names() -> list:
    """No network (a name that does not resolve), and no `names` package."""
    import socket
    import urllib.error
    import urllib.request

    from bigram_lightning import download

    def unreachable(*args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

    def missing():
        raise ModuleNotFoundError("No module named 'names'")

    return [(urllib.request, "urlopen", unreachable), (download, "census_first_names", missing)]


def sigterm_at_step_67() -> list:
    import signal

    from bigram_lightning.core.model import BigramLM

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.trainer.global_step == 67:
            os.kill(os.getpid(), signal.SIGTERM)

    return [(BigramLM, "on_train_batch_end", on_train_batch_end)]


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def full_checkpoints() -> list:
    replace = os.replace

    def full(src, dst, *args, **kwargs):
        if "checkpoints" in Path(dst).parts:
            disk_full()
        return replace(src, dst, *args, **kwargs)

    return [(os, "replace", full)]


def full_pictures() -> list:
    from PIL import Image

    return [(Image.Image, "save", disk_full)]


def full_wandb_tables() -> list:
    """The disk fills up after epoch 0's samples table: W&B cannot move epoch 1's into the run's media directory."""
    move = shutil.move
    tables = []

    def full(src, dst, *args, **kwargs):
        if Path(dst).name.startswith("samples_"):  # (the chart of val/loss is a table too: it is written)
            tables.append(dst)
            if len(tables) > 1:
                raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return move(src, dst, *args, **kwargs)

    return [(shutil, "move", full)]


REFUSALS = (
    Case(("--data.path", "missing.txt"), "`--data.path` missing"),
    Case(("--data.path", "w.txt"), "an empty file", setup=write("w.txt", b"")),
    Case(("--data.path", "w.txt"), "only blank or whitespace lines", setup=write("w.txt", b"\n \n\t\n")),
    Case(("--data.path", "words"), "a directory", setup=directory),
    Case(("--data.path", "pipe"), "a FIFO or device", setup=fifo),
    Case(("--data.path", "w.txt"), "unreadable", setup=words_txt, patch=no_permission),
    Case(
        ("--data.path", "w.png"),
        "binary, not UTF-8 (PNG, gzip, UTF-16, a bad byte 8 MB in)",
        setup=write("w.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256)) * 40),
    ),
    Case(("--data.path", "w.txt"), "control characters (NUL, ESC, DEL)", setup=nul_byte),
    Case(("--data.path", "w.txt"), "a single word (no val/test words)", setup=write("w.txt", b"anna\n")),
    Case(("--data.path", "w.txt"), "a 10 MB line", setup=ten_mb_line),
    Case(("--data.path", "w.txt"), "a file without line breaks", setup=no_line_break),
    Case(("--data.path", "w.txt"), "a word containing '.'", setup=boundary_in_a_word),
    Case(
        ("--data.path", "cjk.txt"),
        "a vocabulary too large for memory (tens of thousands of distinct characters; here with 16 GB free)",
        setup=cjk,
        patch=sixteen_gb,
    ),
    Case(("--accelerator", "gpu"), "`--accelerator gpu` without a GPU", patch=no_gpu),
    Case(("--devices", "0"), "`--devices 0`"),
    Case(("--model.lr", "-1"), "`--model.lr 0` or `-1`"),
    Case(("--model.lr", "abc"), "`--model.lr abc`"),
    Case(("--data.batch_size", "0"), "`--data.batch_size 0`"),
    Case(("--data.max_word_len", "0"), "`--data.max_word_len 0`"),
    Case(("--data.val_frac", "-0.1"), "`--data.val_frac -0.1`"),
    Case(
        ("--data.val_frac", "0.6", "--data.test_frac", "0.5"),
        "fractions summing past 1 (`--data.val_frac 0.6 --data.test_frac 0.5`)",
    ),
    Case(("--data.mode", "bogus"), "`--data.mode bogus`"),
    Case(("--max_epochs", "3", "4"), "a stray value (`--max_epochs 3 4`)"),
    Case(("--trainer.limit_val_batches", "0"), "validation turned off (`--trainer.limit_val_batches 0`)"),
    Case(
        ("--max_epochs", "0"),
        "nothing to train (`--max_epochs 0`, `--trainer.max_steps 0`, `--trainer.limit_train_batches 0`)",
    ),
    Case(
        ("--trainer.val_check_interval", "100"),
        "a validation interval longer than an epoch (`--trainer.val_check_interval 100`, 45 steps per epoch)",
    ),
    Case(
        ("--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", "x"),
        "`--trainer.logger …` (the run's logger is `--logger`'s)",
    ),
    Case(("--trainer.limit_test_batches", "0"), "`--trainer.limit_test_batches 0`"),
    Case(
        ("--trainer.accumulate_grad_batches", "0"),
        "`--trainer.accumulate_grad_batches 0`, `--trainer.check_val_every_n_epoch 0`",
    ),
    Case(
        ("--trainer.use_distributed_sampler", "true"),
        "`--trainer.use_distributed_sampler true` (the batches are split across devices by the project's own sampler)",
    ),
    Case(("--trainer.overfit_batches", "1"), "`--trainer.overfit_batches 1`"),
    Case(
        ("--runs_dir", "words.txt/runs"),
        "`--runs_dir` through a file, or where nothing may be written",
        setup=words_txt,
    ),
    Case(
        ("--modl.lr", "3"),
        "an unknown flag",
        note="(flags are never abbreviated: `--max_epoch` is a typo)",
    ),
    Case(("--strategy", "bogus"), "`--strategy bogus`, `--num_nodes 0`"),
    Case(("--config", "nope.yaml"), "`--config` missing"),
    Case(("--config", "broken.yaml"), "`--config` not valid YAML", setup=configs),
    Case(("--config", "list.yaml"), "a config that is a YAML list", setup=configs),
    Case(("--config", "typo.yaml"), "a misspelt key in a config", setup=configs),
    Case(("--ckpt_path", "nope.ckpt"), "`--ckpt_path` missing"),
    Case(("--ckpt_path", "words.txt"), "`--ckpt_path` not a checkpoint", setup=words_txt),
    Case(("--ckpt_path", "last"), "a truncated or corrupt checkpoint", setup=truncated, trained=True),
    Case(("--ckpt_path", "evil.ckpt"), "a checkpoint carrying code", setup=evil),
    Case(
        ("--ckpt_path", "last", "--data.path", "abc.txt"), "a checkpoint of another vocabulary", setup=abc, trained=True
    ),
    Case(
        ("--ckpt_path", "last", "--seed", "5"),
        "a resume that would change the split (`--seed`, `--data.val_frac`, `--data.test_frac`)",
        trained=True,
    ),
    Case(("--ckpt_path", "last"), "a resume after the data file was edited", setup=edited, trained=True),
    Case(("--ckpt_path", "last", "--model.optimizer", "sgd"), "a resume with another optimizer", trained=True),
    Case(("--model.lr", "1e9"), "a diverging run (`--model.lr 1e9`)"),
    Case(
        ("--max_epochs", "1"),
        "no space left, or a read-only place (checkpoints, config, summary, token cache)",
        patch=full_checkpoints,
    ),
    Case(
        ("--max_epochs", "1"),
        "no space left for the pictures (the PNGs, or W&B's copy of them)",
        patch=full_pictures,
    ),
    Case(
        ("--max_epochs", "2"),
        "no space left for a file W&B writes from the run (the samples table, the charts)",
        patch=full_wandb_tables,
    ),
)

EXAMPLES = {
    "end-of-run": Shell(("python train.py",), show="output"),
    "logger-csv": Shell(("python train.py --logger csv --quiet",)),
    "sample": Shell(
        (
            "bigram-sample --ckpt last --num 20 | tr '\\n' ' '",
            "bigram-sample --prefix ka --num 5 --unique --new_only --temperature 0.8 | tr '\\n' ' '",
            "bigram-sample --num 3 --json",
        ),
        after=TRAINED,
    ),
    "score": Shell(("printf 'emma\\nolivia\\nkarpathy\\nxqzzy\\nZoë\\n' | bigram-score -",), "output", TRAINED),
    "offline-without-names": InProcess(
        (Case((), setup=without_names_txt, patch=offline_without_names),), show="output"
    ),
    "interrupted": InProcess((Case(("--quiet",), patch=sigterm_at_step_67, code=143),), show="output"),
    "bad-input": InProcess(REFUSALS),
}


# ---- running them ----


def names_txt() -> Path:
    """makemore's names.txt, where the tests find it: $BIGRAM_NAMES_TXT, ../shared/data/ or data/."""
    candidates = [os.environ.get("BIGRAM_NAMES_TXT"), REPO.parent / "shared" / "data" / "names.txt"]
    path = next((Path(p) for p in [*candidates, REPO / "data" / "names.txt"] if p and Path(p).is_file()), None)
    if path is None:
        sys.exit("makemore's names.txt not found: set BIGRAM_NAMES_TXT, or run python train.py once to download it")
    if hashlib.sha256(path.read_bytes()).hexdigest() != MAKEMORE_SHA256:
        sys.exit(f"{path} is not makemore's names.txt (its SHA-256 differs): the README's numbers are that file's")
    return path


def environment(root: Path) -> dict:
    """The user's environment without their W&B settings, caches and thread count: W&B offline, HOME in `root`."""
    own = ("WANDB_", "XDG_", "BIGRAM_", "MPLCONFIGDIR", "OMP_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if not k.startswith(own)}
    return env | {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "HOME": str(root / "home"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",  # bigram-sample, python
        "PYTHONPATH": str(REPO),
        "PYTHONUTF8": "1",  # 'Zoë' read and printed as UTF-8 whatever the locale
    }


def fresh_directory(root: Path, name: str, names_file: Path) -> Path:
    """A directory as a checkout is after its first run: train.py, and names.txt in data/."""
    work = root / name
    (work / "data").mkdir(parents=True)
    shutil.copy(names_file, work / "data" / "names.txt")
    shutil.copy(REPO / "train.py", work / "train.py")
    return work


def run_shell(root: Path, name: str, names_file: Path) -> list[tuple[str, str]]:
    example = EXAMPLES[name]
    work = root / example.after if example.after else fresh_directory(root, name, names_file)
    printed = []
    for command in example.commands:
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            cwd=work,
            env=environment(root),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            encoding="utf-8",
            timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{name}: `{command}` exited with {done.returncode}:\n{done.stderr[-3000:]}")
        printed.append((command, done.stdout))
    return printed


def run_in_process(root: Path, names: list[str]) -> dict:
    """The in-process examples, in a Python process of their own: {name: [{"code": …, "stderr": …}, …]}."""
    out = root / "in-process.json"
    done = subprocess.run(
        [sys.executable, __file__, "--in-process", str(out), *names],
        cwd=root,
        env=environment(root),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        encoding="utf-8",
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the in-process examples failed ({done.returncode}):\n{done.stderr[-5000:]}")
    return json.loads(out.read_text())


def run_all(root: Path) -> dict:
    """What every example printed: the trained run first, then the rest two at a time."""
    names_file = names_txt()
    (root / "home").mkdir()
    printed = {TRAINED: run_shell(root, TRAINED, names_file)}
    shells = [name for name, e in EXAMPLES.items() if isinstance(e, Shell) and name != TRAINED]
    in_process = [name for name, e in EXAMPLES.items() if isinstance(e, InProcess)]
    with ThreadPoolExecutor(2) as pool:
        cases = pool.submit(run_in_process, root, in_process)
        for name, result in zip(shells, pool.map(lambda name: run_shell(root, name, names_file), shells)):
            printed[name] = result
        printed |= cases.result()
    return {name: printed[name] for name in EXAMPLES}


# ---- the in-process child ----


@contextlib.contextmanager
def patched(changes: list):
    """(object, attribute, value) set for the duration, then put back (or removed, where it was inherited)."""
    saved = [(obj, attr, vars(obj).get(attr, MISSING)) for obj, attr, _ in changes]
    try:
        for obj, attr, value in changes:
            setattr(obj, attr, value)
        yield
    finally:
        for obj, attr, value in reversed(saved):
            if value is MISSING:
                delattr(obj, attr)
            else:
                setattr(obj, attr, value)


def run_case(root: Path, work: Path, case: Case, train) -> dict:
    shutil.copytree(root / TRAINED / "data", work / "data")
    if case.trained:  # (its W&B directory stays behind: no case needs it)
        shutil.copytree(root / TRAINED / "runs", work / "runs", ignore=shutil.ignore_patterns("wandb"))
    os.chdir(work)
    stderr = io.StringIO()
    try:
        if case.setup:
            case.setup()
        with patched(case.patch() if case.patch else []):
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
                code = train(list(case.argv))
    finally:
        os.chdir(root)
    return {"code": code, "stderr": stderr.getvalue()}


def in_process(out: Path, names: list[str]) -> None:
    from bigram_lightning.run.main import main as train

    root = Path.cwd()
    results = {}
    for name in names:
        cases = EXAMPLES[name].cases
        results[name] = [run_case(root, root / f"{name}-{i}", case, train) for i, case in enumerate(cases)]
    out.write_text(json.dumps(results))


# ---- what the README shows ----


def normalise(text: str, root: Path) -> str:
    """Paths below the example's directory relative to it, and one fixed value for what varies between runs."""
    for base in dict.fromkeys([str(root), str(root.resolve())]):
        text = re.sub(re.escape(base) + r"/[^/\s]+/", "", text)
        text = re.sub(re.escape(base) + r"/[^/\s]+", ".", text)
    text = re.sub(r"(?<=runs/)\d{8}-\d{6}", STAMP, text)
    return re.sub(r"offline-run-\d{8}_\d{6}-[a-z0-9]{8}", WANDB_RUN, text)


def fenced(lines: list[str]) -> str:
    return "```\n" + "".join(line + "\n" for line in lines) + "```\n"


def code_span(text: str) -> str:
    """Inline code for a table cell: a span around text with backticks takes two, and '|' would end the cell."""
    span = f"`` {text} ``" if "`" in text else f"`{text}`"
    return span.replace("|", "\\|")


def render_shell(example: Shell, printed: list) -> str:
    lines = []
    for command, output in printed:
        if example.show == "session":
            lines.append(f"$ {command}")
        lines += output.strip("\n").rstrip().splitlines()
    return fenced(lines)


def shown_lines(case: Case, result: dict) -> list[str]:
    """Its stderr lines; and its exit code where it is not the promised one, so that the diff shows it."""
    lines = [line for line in result["stderr"].splitlines() if line.strip()]
    return lines + ([f"(exit code {result['code']})"] if result["code"] != case.code else [])


def render_in_process(example: InProcess, results: list) -> str:
    if example.show == "output":
        return fenced([line for case, result in zip(example.cases, results) for line in shown_lines(case, result)])
    rows = ["| input | what you see |", "| --- | --- |"]
    for case, result in zip(example.cases, results):
        seen = " ".join(code_span(line) for line in shown_lines(case, result))
        rows.append(f"| {case.what} | {seen}{' ' + case.note if case.note else ''} |")
    return "".join(row + "\n" for row in rows)


def render(printed: dict, root: Path) -> dict[str, str]:
    blocks = {}
    for name, example in EXAMPLES.items():
        if isinstance(example, Shell):
            blocks[name] = render_shell(example, printed[name])
        else:
            blocks[name] = render_in_process(example, printed[name])
    return {name: normalise(block, root) for name, block in blocks.items()}


def generate() -> dict[str, str]:
    """Every example's block, as the code prints it now."""
    with tempfile.TemporaryDirectory(prefix="readme-examples-") as tmp:
        root = Path(tmp)
        return render(run_all(root), root)


def markers(text: str) -> list[str]:
    """The names of the README's `<!-- example: NAME -->` markers, in order."""
    return OPENING.findall(text)


def rewrite(text: str, blocks: dict[str, str]) -> str:
    """The README with every marked block replaced by its generated one; a marker without an example, or left
    open, is an error."""
    found = [m["name"] for m in BLOCK.finditer(text)]
    if found != markers(text) or text.count("<!-- /example -->") != len(found):
        raise SystemExit(f"README.md: every <!-- example: NAME --> needs its <!-- /example --> (found {found})")
    unknown = sorted(set(found) - set(blocks))
    if unknown:
        raise SystemExit(f"README.md has example markers that docs/readme_examples.py does not define: {unknown}")
    return BLOCK.sub(lambda m: m[1] + blocks[m["name"]] + m[4], text)


def diff(old: str, new: str, path: Path) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), f"{path.name}", f"{path.name} (generated)"
    )
    return "".join(lines)


def check(path: Path = README, blocks: Optional[dict[str, str]] = None) -> str:
    """The diff between the README and what the code prints now ('' when none)."""
    blocks = generate() if blocks is None else blocks
    old = path.read_text(encoding="utf-8")
    return diff(old, rewrite(old, blocks), path)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--check", action="store_true", help="change nothing: print the diff and exit 1 if any")
    p.add_argument("--readme", type=Path, default=README, help="the file to rewrite or check")
    p.add_argument("--in-process", nargs="+", metavar=("OUT", "NAME"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.in_process:
        in_process(Path(args.in_process[0]), args.in_process[1:])
        return 0
    blocks = generate()
    old = args.readme.read_text(encoding="utf-8")  # (read after the examples ran: others may edit it meanwhile)
    new = rewrite(old, blocks)
    if args.check:
        if new != old:
            print(diff(old, new, args.readme) + f"\nREADME.md's examples differ from what the code prints: {HINT}")
            return 1
        return 0
    if new != old:
        args.readme.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
