"""How mistakes are reported: `error: <problem>: <fix>` on one line, exit code 2, no traceback."""

import argparse
import os
import sys
from typing import Callable, Optional


class UserError(Exception):
    """A problem with the user's input, reported as one line that names the problem and the fix."""


class Diverged(UserError):
    """Training stopped at a non-finite or exploded loss."""


class Stopped(Exception):
    """Training stopped at a signal (SIGTERM, SIGINT), after saving last.ckpt at that step."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class ToolParser(argparse.ArgumentParser):
    """argparse for the tools (`bigram-sample`, …): a bad flag is one line and exit code 2, like every mistake."""

    def error(self, message: str):
        raise UserError(f"{message}: see {self.prog} --help")


def tool_parser(prog: str, description: str) -> ToolParser:
    p = ToolParser(prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--ckpt", default="last", help="a checkpoint file, a run directory, or 'last': the newest run's")
    p.add_argument("--runs_dir", default="runs", help="where train.py puts its runs")
    return p


def run_tool(main: Callable[[list[str]], None], argv: Optional[list[str]]) -> int:
    """Call a tool's main: a UserError becomes `error: …` on stderr and exit code 2."""
    try:
        main(sys.argv[1:] if argv is None else list(argv))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `bigram-sample --num 1000 | head` closed the pipe: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
