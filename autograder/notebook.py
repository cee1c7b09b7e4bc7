"""Read a submitted notebook into the code the sandbox runs, or into a clear reason it cannot."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

MAX_BYTES = 20 * 2**20
SKIP_TAG = "skip-in-grader"  # cells that load data, train or plot: the hidden suite does that itself
_SHELL_LINE = re.compile(r"^(\s*)[%!].*$", re.MULTILINE)


@dataclass
class Submission:
    student: str
    assignment: str
    path: Path
    cells: list[tuple[int, str]] = field(default_factory=list)
    sha256: str = ""
    error: str = ""  # why the notebook cannot run; every test then fails with it


def read_submission(path: Path, student: str, assignment: str) -> Submission:
    submission = Submission(student, assignment, path)
    try:
        data = path.read_bytes()[:MAX_BYTES + 1]
    except OSError as error:
        submission.error = f"the notebook could not be read: {error.strerror}"
        return submission
    submission.sha256 = hashlib.sha256(data).hexdigest()
    if len(data) > MAX_BYTES:
        submission.error = f"the notebook is larger than {MAX_BYTES // 2**20} MB; clear its outputs and resubmit"
    elif not data.strip():
        submission.error = "the notebook file is empty"
    else:
        try:
            notebook = nbformat.reads(data.decode("utf-8"), as_version=4)
        except Exception as error:  # nbformat raises several types for broken JSON or schema
            submission.error = f"the file is not a valid Jupyter notebook ({type(error).__name__}: {error})"[:500]
            return submission
        submission.cells = [(index, runnable(cell.source)) for index, cell in enumerate(notebook.cells, 1)
                            if cell.cell_type == "code" and not skipped(cell)]
    return submission


def skipped(cell) -> bool:
    """nbgrader's visible test cells and cells tagged ``skip-in-grader`` are not run."""
    nbgrader = cell.metadata.get("nbgrader", {})
    is_test = nbgrader.get("grade", False) and not nbgrader.get("solution", False)
    return is_test or SKIP_TAG in cell.metadata.get("tags", [])


def runnable(source: str) -> str:
    """Plain Python: IPython magics and shell escapes (``%matplotlib``, ``!pip``) become ``pass``."""
    return _SHELL_LINE.sub(lambda match: f"{match.group(1)}pass", source)
