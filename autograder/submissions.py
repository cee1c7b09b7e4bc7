"""Find the notebooks to grade, in one of the layouts a course has (the student id is a folder's or a file's name):

- nbgrader's ``SUBMITTED/<student>/<assignment>/<assignment>.ipynb`` (``nbgrader collect``);
- a flat folder of notebooks, ``SUBMITTED/<student>.ipynb``, as an LMS or Gradescope export gives them;
- one notebook, ``<student>.ipynb``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")
SHOWN = 12  # entries of a folder listed when nothing in it can be graded


def layouts(submitted: Path, assignment: str) -> str:
    rows = [(f"{submitted}/<student>/{assignment}/{assignment}.ipynb", "nbgrader's layout (nbgrader collect)"),
            (f"{submitted}/<student>.ipynb", "a flat folder of notebooks, as an LMS or Gradescope exports them"),
            ("<student>.ipynb", "one notebook, given instead of a folder")]
    width = max(len(path) for path, _ in rows)
    return "\n".join(f"  {path:<{width}}  {what}" for path, what in rows)


@dataclass(frozen=True)
class Refusal:
    """Why a student's notebook is not graded; a result saying so is written for the student."""
    status: str   # a few words for grades.csv: "several notebooks", "no notebook"
    reason: str   # one line for the instructor and the student


@dataclass
class Found:
    layout: str
    notebooks: dict[str, Path] = field(default_factory=dict)  # student -> the notebook to grade
    refused: dict[str, Refusal] = field(default_factory=dict)  # student -> why their notebook is not graded
    unusable: dict[str, str] = field(default_factory=dict)     # a name no result can be filed under -> why
    ignored: list[Path] = field(default_factory=list)          # notebooks outside the layout found

    @property
    def students(self) -> list[str]:
        return sorted({*self.notebooks, *self.refused})


class NothingToGrade(ValueError):
    """No submission of the assignment in a layout the grader knows: the message shows both."""


def find_submissions(submitted: Path, assignment: str) -> Found:
    """Every student who submitted ``assignment`` under ``submitted`` (a folder or one ``.ipynb``).

    nbgrader's layout is used when some ``<student>/<assignment>/`` folder exists, else a flat folder's
    notebooks. In a student's assignment folder the notebook named like the assignment is graded, else its
    only notebook; none, or several others, is a :class:`Refusal`. Students without an ``<assignment>/``
    folder (who submitted other assignments only) are not listed.
    """
    if submitted.is_file():
        found = Found("one notebook")
        add(found, submitted.stem, submitted)
        return found
    entries = sorted(p for p in submitted.iterdir() if not p.name.startswith("."))
    students = [p for p in entries if p.is_dir() and (p / assignment).is_dir()]
    notebooks = [p for p in entries if p.suffix == ".ipynb" and p.is_file()]
    if students:
        found = Found("nbgrader's layout", ignored=notebooks)
        for student in students:
            add(found, student.name, choose(student / assignment, assignment))
        return found
    if notebooks and not (submitted.name == assignment and (submitted / f"{assignment}.ipynb").exists()):
        found = Found("a flat folder of notebooks")
        for notebook in notebooks:
            add(found, notebook.stem, notebook)
        return found
    raise NothingToGrade(f"found no {assignment} submission in {submitted}; expected one of these layouts:\n"
                         f"{layouts(submitted, assignment)}\n{describe(submitted, assignment)}")


def add(found: Found, student: str, notebook: Path | Refusal) -> None:
    if not STUDENT_ID.match(student):
        found.unusable[student] = (f"{student!r} is not usable as a student id (letters, digits and ._@+- only, "
                                   "starting with a letter or digit): rename it")
    elif isinstance(notebook, Refusal):
        found.refused[student] = notebook
    else:
        found.notebooks[student] = notebook


def choose(folder: Path, assignment: str) -> Path | Refusal:
    """The notebook to grade in a student's assignment folder (``<student>/<assignment>/``, as messages say)."""
    shown = Path(folder.parent.name) / folder.name
    expected = folder / f"{assignment}.ipynb"
    if expected.is_file():
        return expected
    notebooks = sorted(p.name for p in folder.glob("*.ipynb") if p.is_file())
    if len(notebooks) == 1:
        return folder / notebooks[0]
    if notebooks:
        return Refusal("several notebooks", f"{shown}/ holds {len(notebooks)} notebooks, none named "
                       f"{assignment}.ipynb: {', '.join(notebooks)}; keep one, or name it {assignment}.ipynb")
    files = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    return Refusal("no notebook", f"{shown}/ holds no notebook (.ipynb)"
                   + (f"; it holds {', '.join(files[:SHOWN])}" if files else ": it is empty"))


def describe(submitted: Path, assignment: str) -> str:
    """What ``submitted`` holds, with a hint where it looks like a wrongly chosen folder."""
    entries = sorted(p for p in submitted.iterdir() if not p.name.startswith("."))
    if (submitted / assignment).is_dir():
        return (f"{submitted} holds {assignment}/, as one student's folder does: give the folder that holds every "
                f"student's folder ({submitted.parent}), or one notebook ({submitted / assignment / assignment}.ipynb)")
    if submitted.name == assignment and (submitted / f"{assignment}.ipynb").is_file():
        return (f"{submitted} holds {assignment}.ipynb, as one student's assignment folder does: give the folder "
                f"that holds every student's folder ({submitted.parent.parent}), or one notebook "
                f"({submitted / assignment}.ipynb)")
    if not entries:
        return f"{submitted} is empty"
    lines = [f"{submitted} holds:"]
    for entry in entries[:SHOWN]:
        if entry.is_dir():
            inside = sorted(p.name + ("/" if p.is_dir() else "") for p in entry.iterdir() if not p.name.startswith("."))
            lines.append(f"  {entry.name}/   {', '.join(inside[:4]) + (', ...' if len(inside) > 4 else '') or 'empty'}")
        else:
            lines.append(f"  {entry.name}")
    if len(entries) > SHOWN:
        lines.append(f"  ... and {len(entries) - SHOWN} more")
    return "\n".join(lines)


def shard(students: list[str], k: int, n: int) -> list[str]:
    """The K-th of N disjoint slices (K from 1), stable under re-runs."""
    return [s for i, s in enumerate(sorted(students)) if i % n == k - 1]
