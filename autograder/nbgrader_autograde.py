"""nbgrader's own ``nbgrader autograde`` (and the formgrader's Autograde button), grading with the kit.

``nbgrader_config.py`` puts :class:`SandboxGrade` in place of nbgrader's grading steps
(``c.Autograde.autograde_preprocessors``): nbgrader still checks the submission, records the student and copies
the files, but the notebook is never executed in a kernel of the instructor's. For each submission it runs
``python -m autograder grade --student`` on that student (the hidden suite, each submission in its own sandbox),
writing the kit's results, the autograded notebook and the gradebook exactly as ``grade --nbgrader-db --student``
does, and hands nbgrader that autograded notebook to save. A notebook the kit does not grade (another assignment's)
gets the result and the notebook a class grade gives it, saying why: nbgrader has removed the student's earlier
autograded folder by then, and a failure here would leave it empty.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor


class GradingFailed(RuntimeError):
    """``python -m autograder grade`` refused or failed; nbgrader logs the message and grades nothing."""


class SandboxGrade(NbGraderPreprocessor):
    """Grade the submission with the kit's hidden suite in its sandbox; the notebook it returns is the kit's
    autograded notebook (the submitted one, its test cells showing the hidden tests' results)."""

    def preprocess(self, nb, resources):
        ids = resources["nbgrader"]
        student, assignment, name = ids["student"], ids["assignment"], ids["notebook"]
        coursedir = self.parent.parent.coursedir  # this preprocessor's exporter belongs to nbgrader's converter
        submitted = Path(coursedir.format_path(coursedir.submitted_directory, student, assignment))
        out = Path(coursedir.format_path(coursedir.autograded_directory, student, assignment)).parent.parent
        db = ids["db_url"].removeprefix("sqlite:///")
        if db == ids["db_url"]:
            raise GradingFailed(f"the kit writes sqlite gradebooks only, not {ids['db_url']}")
        run = subprocess.run([sys.executable, "-m", "autograder", "grade", assignment, str(submitted.parent.parent),
                              "--student", student, "--out", str(out), "--nbgrader-db", db, "--workers", "1"],
                             capture_output=True, text=True)
        for line in (run.stderr + run.stdout).splitlines():
            if line.startswith(("gradebook: ", f"{assignment} on ", "  ")):
                self.log.info(line)
        graded = out / student / assignment / f"{name}.ipynb"
        if run.returncode not in (0, 1) or not graded.is_file():
            raise GradingFailed(f"python -m autograder grade failed (exit {run.returncode}): "
                                f"{(run.stderr.strip() or run.stdout.strip()).splitlines()[-1:]}")
        return nbformat.read(graded, as_version=4), resources
