"""Read a submitted notebook into the code the sandbox runs, or into a clear reason it cannot."""
from __future__ import annotations

import ast
import errno
import hashlib
import os
import re
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

# nbformat validates with jsonschema, which builds an IRI grammar at import (a second of every grading
# run) when the optional rfc3987-syntax is installed, as it is beside Jupyter; notebooks' schema never
# uses that format, so jsonschema is told it is absent.
sys.modules.setdefault("rfc3987_syntax", None)
import nbformat  # noqa: E402
from IPython.core.inputtransformer2 import TransformerManager

from autograder.results import GRADED

MAX_BYTES = 20 * 2**20
SKIP_TAG = "skip-in-grader"  # cells that load data, train or plot: the hidden suite does that itself
# Magics whose code Jupyter runs in the notebook's namespace: `%%time` and `%%capture` cells, `%time` lines.
RUNS_CELL = {"time", "capture", "prun"}
RUNS_LINE = {"time", "prun"}
_IPYTHON = TransformerManager()
DEFINITION = re.compile(r"^(?:async\s+def|def|class)\s+([A-Za-z_]\w*)", re.MULTILINE)  # at a cell's top level


@dataclass
class Submission:
    student: str
    assignment: str
    path: Path
    cells: list[tuple[int, str]] = field(default_factory=list)  # (position among the code cells, code to run)
    sha256: str = ""
    error: str = ""  # why the notebook cannot run; every test then fails with it
    status: str = GRADED  # what grades.csv says: "unreadable" with an error, or the layout's refusal
    labels: dict[int, str] = field(default_factory=dict)   # code cell position -> how Jupyter shows the cell
    defined: dict[str, int] = field(default_factory=dict)  # a top-level function or class -> where it is defined


class Refused(Exception):
    """The file is not read: the message says why, and never quotes it."""


def read_file(path: Path) -> bytes:
    """The bytes of the notebook file at ``path``, read only once the open file is known to be a regular file
    (not a symbolic link, a FIFO or a device: opened without following or waiting) of at most ``MAX_BYTES``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise Refused("the notebook is a symbolic link; submit the notebook file itself") from None
        raise Refused(f"the notebook could not be read: {error.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Refused("the notebook is not a regular file (a FIFO, a device or a folder); submit the notebook "
                          "file itself")
        data = b"" if info.st_size > MAX_BYTES else os.read(fd, MAX_BYTES + 1)
    finally:
        os.close(fd)
    if info.st_size > MAX_BYTES or len(data) > MAX_BYTES:
        raise Refused(f"the notebook is larger than {MAX_BYTES // 2**20} MB; clear its outputs and resubmit")
    return data


def fingerprint(path: Path) -> str:
    """The SHA-256 that :func:`read_submission` records of the notebook at ``path`` ('' when it is not read),
    without reading its cells."""
    try:
        return hashlib.sha256(read_file(path)).hexdigest()
    except Refused:
        return ""


def read_submission(path: Path, student: str, assignment: str) -> Submission:
    submission = Submission(student, assignment, path)
    try:
        data = read_file(path)
    except Refused as refused:
        return unreadable(submission, str(refused))
    submission.sha256 = hashlib.sha256(data).hexdigest()
    if not data.strip():
        return unreadable(submission, "the notebook file is empty")
    try:
        notebook = nbformat.reads(data.decode("utf-8"), as_version=4)
    except UnicodeDecodeError:
        return unreadable(submission, "the file is not a valid Jupyter notebook (it is not UTF-8 text)")
    except Exception as error:  # nbformat raises several types for broken JSON or schema: named, never quoted
        return unreadable(submission, f"the file is not a valid Jupyter notebook ({describe_error(error)})")
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for position, cell in enumerate(code, 1):  # Jupyter numbers only what it runs: code cells
        if not skipped(cell):
            submission.cells.append((position, runnable(cell.source)))
            submission.labels[position] = label(position, cell.source)
            for name in DEFINITION.findall(cell.source):
                submission.defined.setdefault(name, position)
    return submission


def describe_error(error: Exception) -> str:
    """What is wrong with the file, without a word of its content (an error's message may quote it)."""
    if isinstance(error, nbformat.reader.NotJSONError):
        return "it is not JSON"
    return f"{type(error).__name__}: it does not follow the notebook format"


def unreadable(submission: Submission, error: str) -> Submission:
    submission.error, submission.status = error, "unreadable"
    return submission


def label(position: int, source: str) -> str:
    """A code cell as a student finds it in Jupyter: its position among the code cells and its first line."""
    first = next((line.strip() for line in source.splitlines() if line.strip()), "")
    return f"code cell {position} (`{first[:80]}{'...' if len(first) > 80 else ''}`)"


def prepare() -> None:
    """Build nbformat's schema validator now, in the grader, so that every grading fork shares it
    (built in each fork it costs 13 MB and a tenth of a second per submission)."""
    nbformat.validate(nbformat.v4.new_notebook())


def skipped(cell) -> bool:
    """nbgrader's visible test cells and cells tagged ``skip-in-grader`` are not run."""
    nbgrader = cell.metadata.get("nbgrader", {})
    is_test = nbgrader.get("grade", False) and not nbgrader.get("solution", False)
    return is_test or SKIP_TAG in cell.metadata.get("tags", [])


def runnable(source: str) -> str:
    """The cell as Jupyter runs it, in plain Python.

    IPython's own transformer turns magics, shell escapes and help requests into ``get_ipython()``
    calls (which do nothing in the sandbox) and leaves everything else untouched; the code of the
    magics Jupyter runs (``%%time`` cells, ``%time`` lines) then becomes plain code again, on its own lines.
    """
    code = _IPYTHON.transform_cell(source)
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code  # the sandbox reports the error as Jupyter would
    lines = code.splitlines(keepends=True)
    for node in ast.walk(tree):
        kind, name, args = magic(node)
        if kind == "run_cell_magic" and name in RUNS_CELL:
            return "\n" + runnable(args[1])  # a cell magic is the whole cell; its body starts on line 2
        if kind == "run_line_magic" and name in RUNS_LINE and node.lineno == node.end_lineno:
            lines[node.lineno - 1] = " " * node.col_offset + args[0] + "\n"
    return "".join(lines)


def magic(node: ast.AST) -> tuple[str, str, list[str]]:
    """``get_ipython().KIND('NAME', *ARGS)`` as a statement: (KIND, NAME, ARGS); otherwise ('', '', [])."""
    call = node.value if isinstance(node, ast.Expr) else None
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.args
            and isinstance(call.func.value, ast.Call) and getattr(call.func.value.func, "id", "") == "get_ipython"
            and all(isinstance(arg, ast.Constant) and isinstance(arg.value, str) for arg in call.args)):
        return "", "", []
    return call.func.attr, call.args[0].value, [arg.value for arg in call.args[1:]]
