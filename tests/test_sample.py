"""bigram-sample, in-process: names from a checkpoint, the options, and one-line errors."""

import ast
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bigram_lightning.tools.sample import main


def words_of(trained: Path) -> set[str]:
    return set(trained.joinpath("words.txt").read_text().split())


def test_prints_num_names_from_last_deterministically(in_trained, tool):
    code, out, err = tool(main, "--ckpt", "last", "--num", "20", "--seed", "3")
    assert code == 0, err
    names = out.splitlines()
    assert len(names) == 20 and all(set(n) <= set("abcdefghijklmnopqrstuvwxyz") for n in names)
    assert tool(main, "--num", "20", "--seed", "3")[1] == out  # --ckpt last is the default
    assert tool(main, "--num", "20", "--seed", "4")[1] != out


def test_many_names_come_as_drawn_and_max_len_costs_no_memory(in_trained, tool):
    """More names than are printed at a time: the first CHUNK are what --num CHUNK prints (one generator, names one
    after another), the rest follows; a huge --max_len allocates nothing up front."""
    from bigram_lightning.tools.sample import CHUNK

    code, out, err = tool(main, "--num", str(CHUNK + 3), "--seed", "5")
    names = out.splitlines()
    assert code == 0 and len(names) == CHUNK + 3, err
    assert names[:CHUNK] == tool(main, "--num", str(CHUNK), "--seed", "5")[1].splitlines()
    code, out, err = tool(main, "--num", "3", "--max_len", str(10**12))
    assert code == 0 and len(out.splitlines()) == 3, err


def test_the_lectures_names_from_a_checkpoint_of_the_count_model(in_trained, tool, names_words, tmp_path):
    """A checkpoint whose softmax(W) is the lecture's +1 count model of all of names.txt, seed 2147483647: the
    lecture's five names."""
    import torch
    from test_sampling import LECTURE_NAMES, lecture_P

    P, vocab = lecture_P(names_words)
    raw = torch.load(next(in_trained.glob("runs/*/checkpoints/last.ckpt")), weights_only=True)
    raw["state_dict"]["W"] = P.log()
    raw["hyper_parameters"]["vocab"] = vocab.itos
    path = tmp_path / "count_model.ckpt"
    torch.save(raw, path)
    code, out, err = tool(main, "--ckpt", str(path), "--num", "5", "--seed", "2147483647")
    assert code == 0, err
    assert out.splitlines() == LECTURE_NAMES


def test_ctrl_c_ends_a_tool_with_130_and_no_traceback(in_trained, tool, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("bigram_lightning.tools.sample.sample_name", interrupted)
    assert tool(main, "--num", "5") == (130, "", "")


def test_prefix_max_len_unique_and_new_only(in_trained, tool):
    code, out, err = tool(main, "--num", "30", "--prefix", "ma", "--max_len", "6", "--unique", "--new_only")
    assert code == 0, err
    names = out.splitlines()
    assert len(names) == 30 == len(set(names))
    assert all(n.startswith("ma") and len(n) <= 6 for n in names)
    assert not set(names) & words_of(in_trained)


def test_json_gives_each_names_log_probability(in_trained, tool):
    code, out, err = tool(main, "--num", "5", "--json", "--temperature", "0.7")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [sorted(r) for r in rows] == [["logprob", "name"]] * 5
    # a name's probability is below one, and each extra bigram costs at least a little
    assert all(r["logprob"] < 0 and math.isfinite(r["logprob"]) for r in rows)


@pytest.mark.parametrize("temperature", ["1e-3", "1e-320"])
def test_a_vanishing_temperature_gives_the_most_likely_name(in_trained, tool, temperature):
    """T -> 0 is the argmax chain from '.', even where W / T overflows (it was NaN, then an IndexError)."""
    from bigram_lightning.run.checkpoints import Checkpoint
    from bigram_lightning.run.runs import find_checkpoint

    ckpt = Checkpoint.load(find_checkpoint("last", "runs"))
    ix, greedy = ckpt.W[0].argmax().item(), ""
    while ix != 0 and len(greedy) < 30:
        greedy, ix = greedy + ckpt.vocab.itos[ix], ckpt.W[ix].argmax().item()
    code, out, err = tool(main, "--num", "3", "--temperature", temperature)
    assert code == 0 and out.splitlines() == [greedy] * 3, err


def test_low_temperature_prefers_likely_names(in_trained, tool):
    def mean_logprob(t: str) -> float:
        rows = [json.loads(line) for line in tool(main, "--num", "200", "--json", "--temperature", t)[1].splitlines()]
        return sum(r["logprob"] for r in rows) / len(rows)

    assert mean_logprob("0.5") > mean_logprob("1.5")


def test_works_without_the_data_file(data_moved_away, tool):
    code, out, _ = tool(main, "--ckpt", str(data_moved_away), "--num", "3")
    assert code == 0 and len(out.splitlines()) == 3
    code, _, err = tool(main, "--ckpt", str(data_moved_away), "--new_only")
    assert code == 2 and err.startswith("error: --new_only needs the training words, but its data file ")
    assert "gone.txt is not here" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--num", "0"], "error: --num must be at least 1, got 0"),
        (["--temperature", "0"], "error: --temperature must be a positive number, got 0.0"),
        (["--temperature", "nan"], "error: --temperature must be a positive number, got nan"),
        (["--prefix", "Ma"], "error: --prefix 'Ma': characters 'M' are not in the vocabulary"),
        (["--prefix", "a.b"], "error: --prefix 'a.b': characters '.' are not in the vocabulary"),
        (["--prefix", "abc", "--max_len", "3"], "error: --max_len (3) must be longer than --prefix (3 characters)"),
        (["--num", "x"], "error: argument --num: invalid int value: 'x': see bigram-sample --help"),
        (["--seed", str(2**64)], "error: --seed must be a 64-bit integer (from -2**63 to 2**63 - 1), got 1844"),
        (["--ckpt", "nope.ckpt"], "error: --ckpt nope.ckpt: no such file"),
        (["--ckpt", "words.txt"], "error: words.txt is not a PyTorch checkpoint: pass a checkpoint"),
        (["--runs_dir", "elsewhere"], "error: --ckpt last: no run under elsewhere/ has checkpoints/last.ckpt"),
        # 'qq' and one more character at most: 27 names exist, 30 were asked for
        (["--prefix", "qq", "--unique", "--num", "30", "--max_len", "3"], "error: found only 27 of 30 names after"),
    ],
)
def test_bad_input_is_one_line(in_trained, tool, args, message):
    code, out, err = tool(main, *args)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith(message), err


@pytest.mark.slow
def test_console_script_runs(in_trained):
    """The installed command, as a user types it (and `python -m`), in a fresh process."""
    script = Path(sys.executable).with_name("bigram-sample")
    for cmd in ([str(script)], [sys.executable, "-m", "bigram_lightning.tools.sample"]):
        proc = subprocess.run([*cmd, "--num", "4"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert len(proc.stdout.splitlines()) == 4
    proc = subprocess.run([str(script), "--num", "-1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr == "error: --num must be at least 1, got -1\n"


def test_a_run_directory_names_its_last_checkpoint(in_trained, tool):
    """--ckpt takes 'last', a checkpoint file, or a run directory: the same names from each."""
    (run,) = [p for p in (in_trained / "runs").iterdir() if p.is_dir()]
    outs = [
        tool(main, "--ckpt", ckpt, "--num", "5")[1]
        for ckpt in ("last", str(run), str(run / "checkpoints" / "last.ckpt"))
    ]
    assert outs[0] == outs[1] == outs[2] and len(outs[0].splitlines()) == 5


@pytest.mark.slow
def test_the_readmes_python_example_loads_a_model_and_samples(in_trained):
    """The README's lines, run as a plain script (no Trainer) on a checkpoint of the trained bench."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = readme.split("<!-- python-example -->\n```python\n")[1].split("```\n<!-- /python-example -->")[0]
    best = next(in_trained.glob("runs/*/checkpoints/best.ckpt"))
    code = code.replace("runs/20261206-041658/checkpoints/best.ckpt", str(best))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = ast.literal_eval(proc.stdout)  # the printed list of five names
    assert len(names) == 5 and all(isinstance(n, str) and "." not in n for n in names)
