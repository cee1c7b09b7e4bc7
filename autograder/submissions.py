"""Find the notebooks to grade: nbgrader's ``submitted/`` folder, or a single ``.ipynb`` file."""
from __future__ import annotations

import re
from pathlib import Path

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")


def find_notebooks(submitted: Path, assignment: str) -> dict[str, Path]:
    """``{student_id: notebook}`` for every student who submitted ``assignment``; one whose
    assignment folder holds no notebook maps to the missing path (and is graded 0, with the reason).

    nbgrader's layout is ``submitted/<student>/<assignment>/<assignment>.ipynb``; when the
    notebook was renamed, the folder's only notebook is used. Students without a folder for
    ``assignment`` (they submitted only other assignments) are not listed.
    """
    if submitted.suffix == ".ipynb":
        return {submitted.stem: submitted}
    found = {}
    for folder in sorted(p for p in submitted.iterdir() if p.is_dir() and STUDENT_ID.match(p.name)):
        if not (folder / assignment).is_dir():
            continue
        expected = folder / assignment / f"{assignment}.ipynb"
        others = sorted((folder / assignment).glob("*.ipynb"))
        found[folder.name] = expected if expected.exists() or len(others) != 1 else others[0]
    return found


def shard(students: list[str], spec: str | None) -> list[str]:
    """The K-th of N disjoint slices (``spec`` = "K/N", K from 1), stable under re-runs."""
    if not spec:
        return students
    k, n = (int(part) for part in spec.split("/"))
    if not 1 <= k <= n:
        raise ValueError(f"--shard {spec}: K must be between 1 and N")
    return [s for i, s in enumerate(sorted(students)) if i % n == k - 1]
