"""The autograded notebook, ``OUT/<student>/<assignment>/<notebook>.ipynb``, that nbgrader's formgrader shows and
``nbgrader generate_feedback`` turns into the feedback students fetch.

It is the submitted notebook as the student saved it, except that each function's test cell (``test_<function>``)
shows, as its output, what the hidden suite found about that function: each test, its points, and for a failed one
what was called, what was expected and what came back, with the book's section that teaches it. Nothing of it runs.
"""
from __future__ import annotations

import html
import shutil
from pathlib import Path

import nbformat

from autograder.gradebook import function_of
from autograder.results import (GRADED, SubmissionResult, TestResult, book_link, explained, published_book,
                                result_folder, write_atomic)


def tests_html(tests: list[TestResult], book_url: str) -> str:
    rows = []
    for test in tests:
        detail = explained(test.output) + book_link(test, book_url) if test.status == "failed" else (
            f"<pre>{html.escape(test.output)}</pre>" if test.output else "")
        rows.append(f'<tr><th scope="row">{html.escape(test.name)}</th><td>{test.status}</td>'
                    f"<td>{test.score:g} / {test.max_score:g}</td><td>{detail}</td></tr>")
    return ('<table class="autograder-tests"><thead><tr><th scope="col">Hidden test</th><th scope="col">Result</th>'
            '<th scope="col">Points</th><th scope="col">Details</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>")


def tests_text(tests: list[TestResult]) -> str:
    lines = []
    for test in tests:
        lines.append(f"[{'PASS' if test.status == 'passed' else 'FAIL'}] {test.name} "
                     f"({test.score:g}/{test.max_score:g})")
        lines += ["    " + line for line in test.output.splitlines()] if test.status == "failed" else []
    return "\n".join(lines)


def autograded(result: SubmissionResult, submitted: Path, book_url: str | None = None) -> nbformat.NotebookNode:
    """``submitted`` (the notebook graded), each ``test_<function>`` cell showing that function's hidden tests; a
    notebook not graded (another assignment's, say) opens with a cell saying why."""
    book_url = published_book() if book_url is None else book_url
    notebook = nbformat.read(submitted, as_version=4)  # read by the grader already: it is a notebook
    if result.status != GRADED:
        notebook.cells.insert(0, nbformat.v4.new_markdown_cell(
            f"**Not graded ({result.status})**: " + html.escape(" ".join(result.causes))))
    for cell in notebook.cells:
        nbgrader = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or not nbgrader.get("grade"):
            continue
        grade_id = nbgrader.get("grade_id", "")
        tests = [t for t in result.graded if f"test_{function_of(t.name)}" == grade_id]
        if result.status != GRADED:
            text = f"Not graded ({result.status}): " + " ".join(result.causes)
            data = {"text/plain": text, "text/html": f"<pre>{html.escape(text)}</pre>"}
        else:
            data = {"text/plain": tests_text(tests), "text/html": tests_html(tests, book_url)}
        cell.outputs = [nbformat.v4.new_output("display_data", data=data)]
        cell.execution_count = None
    return notebook


def write(result: SubmissionResult, submitted: Path, out: Path) -> None:
    """The autograded notebook beside ``result``'s files in ``out``, replaced atomically; none for a notebook
    the grader could not read (its result says why)."""
    if result.status in ("unreadable", "no notebook", "several notebooks"):
        return
    notebook = autograded(result, submitted)
    folder = result_folder(out, result.student, result.assignment)
    write_atomic(folder / f"{submitted.stem}.ipynb", nbformat.writes(notebook) + "\n")


def write_from(results: list[SubmissionResult], submitted: Path, out: Path) -> list[str]:
    """:func:`write` for results graded by other runs (``merge``): each from the notebook it graded, found in
    ``submitted`` (a folder, or a .zip unpacked for the while) by its SHA-256. Returns the students whose graded
    notebook is not there (changed since); a result that graded no notebook (refused) has none to write."""
    from autograder.notebook import fingerprint
    from autograder.submissions import unpack

    unpacked, folder = unpack(submitted) if submitted.is_file() else (None, submitted)
    try:
        graded: dict[str, Path] = {}
        for path in sorted(folder.rglob("*.ipynb")):
            graded.setdefault(fingerprint(path), path)
        missing = []
        for result in results:
            if result.notebook_sha256 and result.notebook_sha256 in graded:
                write(result, graded[result.notebook_sha256], out)
            elif result.notebook_sha256:
                missing.append(result.student)
        return missing
    finally:
        if unpacked:
            shutil.rmtree(unpacked, ignore_errors=True)
