"""What the verbs' command lines share: a parser whose errors are one line, and argument types that
check a value up front (before anything is read, written or imported) and say what is wrong with it."""
from __future__ import annotations

import argparse
import importlib.util
import math
import re
import sys
from pathlib import Path
from typing import NoReturn

from autograder import VERBS


class Parser(argparse.ArgumentParser):
    """The parser of ``python -m autograder VERB``: described as :data:`autograder.VERBS` says, and
    answering a wrong argument with one line (no usage block, no traceback)."""

    def __init__(self, verb: str, **kwargs) -> None:
        what = VERBS[verb]
        kwargs["epilog"] = kwargs.get("epilog", "").replace("``", "")  # docstrings' literals read as plain text
        super().__init__(prog=f"python -m autograder {verb}", description=what[0].upper() + what[1:] + ".",
                         formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (--help for usage)\n")


def at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text}")
    return value


def shard(text: str) -> tuple[int, int]:
    """``K/N``: the K-th (from 1) of N slices."""
    k, slash, n = text.partition("/")
    if not (slash and k.strip().isdigit() and n.strip().isdigit()):
        raise argparse.ArgumentTypeError(f"expected K/N such as 1/4 (slice K of N), got {text!r}")
    k, n = int(k), int(n)
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"{text}: K must be between 1 and N")
    return k, n


def folder(text: str) -> Path:
    """A folder to write into: it may not exist yet (it is created, with its parents, once every argument
    is checked), but it may not be a file, nor lie under one."""
    path = Path(text)
    for part in [path, *path.parents]:
        if part.exists():
            if not part.is_dir():
                what = "is a file" if part == path else f"lies under {part}, which is a file"
                raise argparse.ArgumentTypeError(f"{path} {what}; give a folder")
            break
    return path


def file(example: str):
    """A file to write (named like ``example``), not a folder; its missing parent folders are created when
    it is written."""
    def check(text: str) -> Path:
        path = Path(text)
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{path} is a folder; give a file name such as {path / example}")
        folder(str(path.parent))
        return path

    return check


def existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{path} is not a file")
    return path


def lms_pattern(text: str) -> str:
    """An LMS's name (autograder.submissions.LMS), auto, none, or a regular expression with nbgrader's named
    groups ``student_id`` and ``file_id``."""
    from autograder.submissions import LMS

    if text in (*LMS, "auto", "none"):
        return text
    try:
        groups = re.compile(text).groupindex
    except re.error as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a regular expression: {error}") from None
    if not {"student_id", "file_id"} <= set(groups):
        raise argparse.ArgumentTypeError(f"expected {', '.join(LMS)}, auto, none, or a regular expression with the "
                                         f"groups (?P<student_id>...) and (?P<file_id>...), got {text!r}")
    return text


def check_installed(parser: Parser, module: str = "torch") -> None:
    """Stop, before anything is written, when this Python lacks the grader's packages (not the venv's Python)."""
    if importlib.util.find_spec(module) is None:
        parser.error(f"this Python ({sys.executable}) has no {module}: run `make setup` once, then use "
                     ".venv/bin/python -m autograder")


def check_assignment(parser: Parser, suites: Path, assignment: str) -> None:
    """Stop unless ``assignment`` has a hidden suite (a folder of ``suites``); the message lists those there are."""
    if not (suites / assignment).is_dir():
        known = sorted(s.name for s in suites.iterdir() if s.is_dir() and not s.name.startswith(("_", ".")))
        parser.error(f"no hidden suite for {assignment!r} in {suites} (there are: {', '.join(known)})")


def make_folder(parser: Parser, path: Path) -> None:
    """Create ``path`` with its parents, or stop with one line saying why it cannot be."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        parser.error(f"cannot create the folder {path}: {error.strerror}")
