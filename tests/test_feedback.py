"""What students and instructors read: each submission's feedback.html, and the instructor's report.

A small conv_basics class (the solution, the untouched exercise and two students of tests/realistic/) is graded
through the real command line, then:

- feedback.html says, for each failed test, what was called, what was expected and what came back, and links the
  book's section that teaches it; it holds no line of the hidden suites' source;
- every test of both suites names a book section, and each one exists in the built book;
- ``python -m autograder report OUT`` writes one page with the scores' histogram, the pass rates, the most common
  failure messages and the slowest submissions, its charts as images with text alternatives; an unreadable
  results.json is left out, with a message;
- both pages pass axe-core in Chromium (WCAG 2.0/2.1 A and AA and best practices) with no violation.
"""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.results import SubmissionResult, published_book
from test_autograder import autograder
from test_autograder_realistic import BASE, notebook, students
from test_book_browser import SCREENSHOTS, axe_violations

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SUITES = ROOT / "autograder" / "suites"
REALISTIC = ["d2l_loops", "int_only_pool", "convolution_flipped"]


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Path:
    """conv_basics graded for four students, and the report on them: the output folder."""
    base = tmp_path_factory.mktemp("feedback")
    folders = {name: base / "submitted" / name / "conv_basics" for name in ["solved", "untouched", *REALISTIC]}
    for folder in folders.values():
        folder.mkdir(parents=True)
    shutil.copy(ROOT / "solutions" / "conv_basics" / "conv_basics.ipynb", folders["solved"])
    shutil.copy(ROOT / "exercises" / "conv_basics" / "conv_basics.ipynb", folders["untouched"])
    realistic = students("conv_basics")
    for name in REALISTIC:
        nbformat.write(notebook("conv_basics", realistic[name], realistic[BASE]), folders[name] / "conv_basics.ipynb")
    run = autograder("grade", "conv_basics", str(base / "submitted"), "--out", str(base / "out"), "--workers", "2",
                     "--device", "cpu")
    assert run.returncode == 0, run.stderr[-3000:]
    report = autograder("report", str(base / "out"))
    assert report.returncode == 0 and "report on 5 results (conv_basics)" in report.stdout, report.stderr[-3000:]
    return base / "out"


def page_text(path: Path) -> str:
    return html.unescape(path.read_text())


def test_feedback_html_says_what_went_wrong_and_where_the_book_explains_it(graded):
    page = page_text(graded / "d2l_loops" / "conv_basics" / "feedback.html")
    result = SubmissionResult.read(graded / "d2l_loops" / "conv_basics" / "results.json")
    assert f"Score: <strong>{result.score:g} / {result.max_score:g}</strong>" in page
    section = page[page.index('<h3 id="test-'):]
    padding = section[section.index("corr2d: padding 1 on a 4×5 input"):]
    padding = padding[:padding.index("</section>")]
    assert "<dt>What was called</dt><dd><pre>`corr2d`</pre>" in padding, padding  # the call, not the exception
    assert "<dt>What went wrong</dt><dd><pre>it raised an exception:" in padding
    assert "unexpected keyword argument 'padding'" in padding
    assert f'href="{published_book()}/book/02_padding.html#adding-a-border-of-zeros"' in padding, padding
    dtype = section[section.index("corr2d: a float64 input stays float64"):]
    dtype = dtype[:dtype.index("</section>")]
    for words in ("What was expected", "a torch.float64 tensor", "What came back", "dtype torch.float32"):
        assert words in dtype, dtype
    assert "The book explains this" not in dtype, "no section of the book is about dtypes"
    for called in re.findall(r"<dt>What was called</dt><dd><pre>(.*?)</pre>", page, re.DOTALL):
        assert "\n" not in called and not re.search(r"raised|expected|wrong|Error", called), called
    failed = [t.name for t in result.tests if t.status == "failed"]
    assert len(failed) == page.count('<section aria-labelledby="test-') and failed
    assert published_book() == "https://convnets-course.github.io/convnets-course"  # _config.yml's repository


def test_feedback_names_the_misconception_and_links_its_section(graded):
    text = (graded / "convolution_flipped" / "conv_basics" / "feedback.txt").read_text()
    example = text[text.index("[FAIL] corr2d: the 3×3 example"):].split("\n[")[0]
    assert "likely mistake: kernel flipped: the values are those of a convolution" in example, example
    assert example.rstrip().endswith(f"The book explains this: “Convolution or cross-correlation?”, chapter 1, "
                                     f"{published_book()}/book/01_cross_correlation.html"
                                     "#convolution-or-cross-correlation"), example
    page = page_text(graded / "convolution_flipped" / "conv_basics" / "feedback.html")
    assert "<dt>What it looks like</dt><dd><pre>kernel flipped:" in page


def test_an_untouched_notebook_reads_one_line_per_function(graded):
    text = (graded / "untouched" / "conv_basics" / "feedback.txt").read_text()
    lines = [line for line in text.splitlines() if line.startswith("[")]
    assert [line.split(":")[0] for line in lines] == ["[FAIL] corr2d", "[FAIL] conv_output_shape",
                                                      "[FAIL] corr2d_multi_in_out", "[FAIL] pool2d", "[FAIL] Conv2D"]
    assert all("nothing implemented yet (it raises NotImplementedError)" in line for line in lines), lines
    assert len(text.splitlines()) < 15 and "Traceback" not in text and "follow from this" not in text


def source_lines() -> set[str]:
    """The hidden suites' code: every stripped line of 30 characters or more that is not a comment."""
    lines = set()
    for path in SUITES.rglob("*.py"):
        lines |= {line.strip() for line in path.read_text().splitlines()
                  if len(line.strip()) >= 30 and not line.strip().startswith("#")}
    return lines


def test_feedback_html_holds_no_hidden_source(graded):
    pages = {path: page_text(path) for path in graded.glob("*/conv_basics/feedback.html")}
    assert len(pages) == 5
    lines = source_lines()
    assert len(lines) > 200
    for path, text in pages.items():
        leaked = [line for line in lines if line in text]
        assert not leaked, f"{path} shows lines of the hidden suites: {leaked[:5]}"


COLLECT = """
import json, sys
import pytest
from autograder.plugin import GradingPlugin
suite, ini, rootdir, out = sys.argv[1:]
plugin = GradingPlugin(None, "cpu")
code = pytest.main([suite, "-c", ini, "--rootdir", rootdir, "--collect-only", "-p", "no:terminal"], plugins=[plugin])
open(out, "w").write(json.dumps({name: book for name, _, _, book in plugin.meta.values()}))
sys.exit(code)
"""


def book_sections(assignment: str, tmp_path: Path) -> dict[str, dict]:
    """Each test of ``assignment``'s suite and the book section its ``book`` marker names, as the grader reads them."""
    out = tmp_path / f"{assignment}.json"
    subprocess.run([sys.executable, "-c", COLLECT, str(SUITES / assignment), str(SUITES / "pytest.ini"), str(SUITES),
                    str(out)], check=True, capture_output=True, timeout=300)
    return json.loads(out.read_text())


@pytest.mark.parametrize("assignment", ["conv_basics", "cnn_vs_fc", "receptive_fields"])
def test_every_test_names_a_section_of_the_built_book(built_site, tmp_path, assignment):
    sections = book_sections(assignment, tmp_path)
    assert len(sections) >= 20
    for test, book in sections.items():
        assert book, f"{test} names no book section (@pytest.mark.book)"
        page, anchor = book["path"].split("#")
        built = built_site / page
        assert built.is_file(), f"{test}: {page} is not a page of the built book"
        assert f'id="{anchor}"' in built.read_text(), f"{test}: {page} has no section #{anchor} ({book['section']})"


def test_every_misconception_names_a_section_of_the_built_book(built_site):
    from autograder.misconceptions import TABLE
    from autograder.plugin import section

    for function, misconceptions in TABLE.items():
        for misconception in misconceptions:
            page, anchor = section(*misconception.book)["path"].split("#")
            assert f'id="{anchor}"' in (built_site / page).read_text(), (function, misconception.name, page, anchor)


def test_report_shows_the_class_in_charts_and_tables(graded):
    page = page_text(graded / "report.html")
    for heading in ("Scores", "Pass rate per test", "What to re-teach", "Most common failure messages",
                    "Slowest submissions"):
        assert f"<h3>{heading}</h3>" in page
    reteach = page[page.index("<h3>What to re-teach</h3>"):page.index("<h3>Most common failure messages</h3>")]
    assert "<td>corr2d: kernel flipped</td><td>1</td><td>convolution_flipped</td>" in reteach, reteach
    assert "<td>“Convolution or cross-correlation?” (chapter 1)</td><td>1</td>" in reteach
    assert "<td>corr2d</td><td>1</td>" in reteach.split("not attempted")[1], "the untouched notebook's functions"
    assert "NotImplementedError" not in page[page.index("<h3>Most common failure messages</h3>"):]
    assert page.count('<img src="data:image/png;base64,') == 3
    alts = re.findall(r'<img [^>]*alt="([^"]*)"', graded.joinpath("report.html").read_text())
    assert len(alts) == 3 and all(len(alt) > 40 for alt in alts), alts
    failures = page[page.index("most common failure messages"):]
    row = failures[failures.index("<tr><td>`corr2d` raised an exception: TypeError"):]
    row = row[:row.index("</tr>")]  # d2l_loops' four stride tests fail alike (its corr2d takes no stride)
    assert "unexpected keyword argument 'stride'</td><td>4</td><td>1</td>" in row, row
    for student in ("solved", "untouched", *REALISTIC):
        assert f"<td>{student}</td>" in page


def test_report_leaves_out_what_it_cannot_read(graded, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(graded, out)
    broken = out / "untouched" / "conv_basics" / "results.json"
    broken.write_text("{not json")
    run = autograder("report", str(out), "--html", str(tmp_path / "report.html"))
    assert run.returncode == 0 and f"cannot be read: {broken}" in run.stderr, run.stderr
    assert "report on 4 results" in run.stdout and (tmp_path / "report.html").is_file()
    empty = autograder("report", str(tmp_path / "report-of-nothing"))
    assert empty.returncode == 2 and "is not a folder" in empty.stderr
    (tmp_path / "nothing").mkdir()
    nothing = autograder("report", str(tmp_path / "nothing"))
    assert nothing.returncode == 2 and "holds no readable results" in nothing.stderr


@pytest.mark.browser
@pytest.mark.parametrize("page", ["report.html", "d2l_loops/conv_basics/feedback.html"])
def test_pages_pass_axe_in_chromium(graded, browser, page):
    tab = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        tab.goto((graded / page).as_uri(), wait_until="load")
        assert tab.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        assert axe_violations(tab) == []
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(SCREENSHOTS / f"grading_{Path(page).stem}.png"), full_page=True)
    finally:
        tab.close()
