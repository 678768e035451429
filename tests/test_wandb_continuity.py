"""W&B across restarts and bad networks: one run id per run (in run.json and in every checkpoint), monotonic
steps over resumed segments, and no W&B call that holds up training when W&B cannot work."""

import json
import shutil
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from bigram_lightning.run.tracking import PROBE_SECONDS as WANDB_PROBE_SECONDS
from bigram_lightning.run.tracking import wandb_mode

pytestmark = pytest.mark.slow  # end-to-end: real processes, W&B runs, long trainings

WANDB = ["--logger", "wandb", "--samples.num", "0"]


def logged_steps(run: dict) -> list[int]:
    """trainer/global_step of every row a W&B run logged, in order."""
    return [row["trainer/global_step"] for row in run["rows"] if "trainer/global_step" in row]


def test_the_run_id_is_in_every_checkpoint_and_steps_stay_monotonic(workdir, words_file, train, wandb_runs):
    code, _, err, first = train("--data.path", "words.txt", "--max_epochs", "2", *WANDB)
    assert code == 0, err
    run = Path(first["run_dir"])
    wandb_id = json.loads((run / "run.json").read_text())["wandb_id"]
    assert first["wandb_id"] == wandb_id
    # in the checkpoint a resume reads; best.ckpt holds the weights only (and what the tools and the test need)
    assert (
        torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]["WandbRun"]["wandb_id"]
        == wandb_id
    )
    best = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    assert "callbacks" not in best and "optimizer_states" not in best and "vocab" in best["hyper_parameters"]
    code, _, err, second = train("--ckpt_path", "last", "--max_epochs", "4", *WANDB)
    assert code == 0, err
    segments = sorted(run.glob(f"wandb/offline-run-*/run-{wandb_id}.wandb"))
    assert len(segments) == 2 and second["wandb_id"] == wandb_id
    before, after = (logged_steps(run) for run in wandb_runs)
    assert before and after and before + after == sorted(before + after)
    assert before[-1] == first["global_step"] and after[0] >= first["global_step"] - 1
    assert after[-1] == second["global_step"]


def test_a_checkpoint_moved_out_of_its_run_resumes_the_same_wandb_run(workdir, words_file, train):
    _, _, _, first = train("--data.path", "words.txt", "--max_epochs", "1", *WANDB)
    shutil.copy(first["last_ckpt"], workdir / "moved.ckpt")
    code, _, err, second = train("--data.path", "words.txt", "--ckpt_path", "moved.ckpt", "--max_epochs", "2", *WANDB)
    assert code == 0, err
    assert second["run_dir"] != first["run_dir"] and second["wandb_id"] == first["wandb_id"]
    assert json.loads((Path(second["run_dir"]) / "run.json").read_text())["wandb_id"] == first["wandb_id"]
    assert list(Path(second["run_dir"]).glob(f"wandb/offline-run-*/run-{first['wandb_id']}.wandb"))


def serve(handler) -> tuple[str, callable]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server.shutdown


class Unauthorized(BaseHTTPRequestHandler):
    """A W&B server that refuses the API key."""

    def answer(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"errors": [{"message": "invalid api key"}]}')

    do_GET = do_POST = do_HEAD = do_PUT = answer

    def log_message(self, *args):
        pass


@pytest.fixture
def with_key(monkeypatch, workdir):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(workdir))  # no ~/.netrc, no W&B settings of the user
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)


def test_auto_mode_does_not_wait_on_a_server_that_never_answers(with_key, monkeypatch):
    with socket.socket() as s:  # accepts connections (the kernel's backlog) but never answers
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{s.getsockname()[1]}")
        start = time.perf_counter()
        assert wandb_mode("auto") == "offline"
        assert time.perf_counter() - start < WANDB_PROBE_SECONDS + 1
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens
    assert wandb_mode("auto") == "offline"


def test_forced_online_against_a_server_that_never_answers_costs_seconds(with_key, words_file, train, monkeypatch):
    def seconds(*args: str) -> tuple[float, str]:
        start = time.perf_counter()
        code, out, err, summary = train("--data.path", "words.txt", "--max_epochs", "1", *WANDB, *args)
        assert code == 0 and list(Path(summary["wandb_dir"]).glob(f"run-{summary['wandb_id']}.wandb")), err
        return time.perf_counter() - start, err

    offline, _ = seconds("--wandb.mode", "offline")
    with socket.socket() as s:  # accepts connections (the kernel's backlog) but never answers
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{s.getsockname()[1]}")
        online, err = seconds("--wandb.mode", "online")
    assert "did not answer" in err and "logging offline instead" in err
    assert online < offline + 12, (online, offline)


def test_a_bad_key_falls_back_to_offline_and_trains(with_key, words_file, train, monkeypatch):
    url, stop = serve(Unauthorized)
    monkeypatch.setenv("WANDB_BASE_URL", url)
    try:
        assert wandb_mode("auto") == "online"  # the server answers: only wandb.init can tell the key is bad
        start = time.perf_counter()
        code, out, err, summary = train(
            "--data.path", "words.txt", "--max_epochs", "1", *WANDB, "--wandb.mode", "online"
        )
        seconds = time.perf_counter() - start
    finally:
        stop()
    assert code == 0, err
    assert "warning: W&B could not start an online run" in err and "logging offline instead" in err
    assert list(Path(summary["wandb_dir"]).glob(f"run-{summary['wandb_id']}.wandb")) and "wandb sync" in out
    assert seconds < 30


def test_wandb_disabled_trains_and_says_so(workdir, words_file, train, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    code, out, err, summary = train("--data.path", "words.txt", "--max_epochs", "1", *WANDB)
    assert code == 0, err
    assert "W&B: disabled" in out and summary["wandb_id"] is None
    assert not list(Path(summary["run_dir"]).glob("wandb/*run-*"))
