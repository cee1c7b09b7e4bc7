"""The nbgrader loop in real JupyterLab servers with nbgrader's extensions, driven by Chromium (issue 21).

The course is the session's graded class (conftest's ``nbgrader_class``: alice solved, bob one bug, carol untouched,
all through nbgrader's exchange commands, graded by the kit), copied. dave works in his own JupyterLab, set up as
the README's student server: nbgrader's instructor tools disabled with nbgrader's own commands (`jupyter
labextension disable` / `jupyter server extension disable`, at his user level). Through the Assignment List he
fetches conv_basics, opens it (not modified by opening), validates and submits it (his notebook's cells are written
to the fetched file, as if typed: bob's bug in pool2d), later fetches his feedback and opens it with "view
feedback". The instructor collects and grades with the README's command (only dave is new), then works in the
formgrader of his own JupyterLab: Manage Submissions, Manage Students, Manual Grading (override a score, add a
comment), the Autograde button (the kit's sandbox grades again: same files, same scores), Generate and Release
Feedback. `nbgrader export` gives the CSV.

Screenshots land in _build/screenshots/nbgrader-*.png.
"""
from __future__ import annotations

import contextlib
import csv
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from test_deploy_assignment import environment, nbgrader, person
from test_jupyterlab import BIN, SHOTS, running_lab
from test_nbgrader_course import ASSIGNMENT, BUG_MESSAGE, digest, kit, manual, solve

pytestmark = [pytest.mark.browser, pytest.mark.slow]
LAB_PLUGINS_OFF = ["@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",
                   "@jupyter/nbgrader:course-list"]
LOADING_MS = 180_000  # a formgrader page asks for every submission's state: slow on a busy machine
CREATE_ASSIGNMENT = "nbgrader-create_assignemnt"  # the id (sic) of nbgrader's "Create Assignment" sidebar panel
SERVER_EXTENSIONS_OFF = ["nbgrader.server_extensions.formgrader", "nbgrader.server_extensions.course_list"]
# The open notebook's state once the kernel's info (its language_info, which JupyterLab writes into the notebook's
# metadata) has been applied: the test's lab exposes the application (jupyter_lab_config.json, below) to read it.
OPENED_STATE = """async () => {
    const notebook = window.jupyterapp.shell.currentWidget;
    await notebook.context.ready;
    await notebook.sessionContext.ready;
    const info = await notebook.sessionContext.session.kernel.info;
    await new Promise(resolve => setTimeout(resolve, 0));
    return {dirty: notebook.context.model.dirty, kernel: info.language_info,
            notebook: notebook.context.model.getMetadata('language_info')};
}"""


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"nbgrader-{name}.png"), full_page=True)


def student_server_config(home: Path) -> None:
    """dave's ~/.jupyter as the README sets up a student's: his nbgrader id (everyone is root in this container),
    nbgrader's instructor plugins disabled with `jupyter labextension disable --level=user`, and its instructor
    server extensions off in his jupyter_server_config.json (`jupyter server extension disable` refuses nbgrader's
    modules: they declare no extension points of their own). For the test only: the application exposed to it."""
    config = home / ".jupyter"
    with (config / "nbgrader_config.py").open("a") as file:
        file.write(f"c.CourseDirectory.student_id = {home.name!r}\n")
    run = subprocess.run([str(BIN / "jupyter"), "labextension", "disable", "--level=user", *LAB_PLUGINS_OFF],
                         env={**environment(home), "JUPYTER_CONFIG_DIR": str(config)}, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    (config / "jupyter_server_config.json").write_text(json.dumps(
        {"ServerApp": {"jpserver_extensions": dict.fromkeys(SERVER_EXTENSIONS_OFF, False)}}))
    (config / "jupyter_lab_config.json").write_text(json.dumps({"LabApp": {"expose_app_in_browser": True}}))


def assignment_list(page, url: str, token: str):
    page.goto(f"{url}/lab?reset&token={token}")
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Nbgrader$")).click()
    page.locator(".lm-Menu-item", has_text="Assignment List").first.click()
    return page.locator("#nbgrader-assignment-list, .nbgrader-AssignmentList, .jp-NbgraderAssignmentList").first


@pytest.fixture(scope="module")
def course(nbgrader_class, tmp_path_factory):
    """(base folder, course folder, instructor's home, dave's home)."""
    base = nbgrader_class(tmp_path_factory.mktemp("nbgrader-lab") / "class")
    dave = person(base, "dave", base / "exchange")
    student_server_config(dave)
    return base, base / "instructor" / "course", base / "instructor", dave


@contextlib.contextmanager
def browsing(browser, who: str, **options):
    """A page in a browser session of its own (``options``: the context's), screenshot as failure-WHO when what
    it is used for fails."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, **options)
    page = context.new_page()
    try:
        yield page
    except Exception:
        shot(page, f"failure-{who}")
        raise
    finally:
        context.close()


def test_the_nbgrader_loop_in_jupyterlab(course, browser):
    base, folder, instructor, dave = course
    with browsing(browser, "student") as page:
        the_loop(page, base, folder, instructor, dave)


def the_loop(page, base: Path, folder: Path, instructor: Path, dave: Path) -> None:
    with running_lab(base / "dave-lab", dave, HOME=str(dave), JUPYTER_CONFIG_DIR=str(dave / ".jupyter")) as (url,
                                                                                                           token):
        assignment_list(page, url, token)
        page.get_by_role("button", name="Fetch").first.click()
        notebook = dave / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        deadline = time.monotonic() + 60
        while not notebook.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        shot(page, "student-fetched")
        opened_unmodified(page.context, url, token)
        menu_items = page.locator(".lm-MenuBar-item").all_inner_texts()
        page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Nbgrader$")).click()
        nbgrader_menu = page.locator(".lm-Menu-content").last.inner_text()
        page.keyboard.press("Escape")
        assert "Assignment List" in nbgrader_menu and "Formgrader" not in nbgrader_menu, nbgrader_menu
        assert "Nbgrader" in " ".join(menu_items)
        assert page.locator(f"#{CREATE_ASSIGNMENT}").count() == 0  # the instructor's lab has it (below)
        assert page.request.get(f"{url}/formgrader?token={token}").status == 404
        solve(notebook, bug=True)  # his work, as if typed
        page.locator("a.assignment-notebooks-link").first.click()  # the downloaded assignment's notebooks
        page.locator(".nested_list_item button", has_text="Validate").first.click()
        # dave's visible pool2d test fails: validation says so (the button turns red), he submits all the same
        page.locator(".nested_list_item button.btn-danger").first.wait_for(timeout=120_000)
        shot(page, "student-validated")
        page.keyboard.press("Escape")
        page.get_by_role("button", name="Submit").first.click()
        inbound = next((base / "exchange").glob("*/inbound"))
        deadline = time.monotonic() + 60
        while not list(inbound.glob("dave+*")) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert list(inbound.glob("dave+*")), "dave's submission did not reach the exchange"
        shot(page, "student-submitted")

        nbgrader(instructor, folder, "collect", ASSIGNMENT)
        grading = kit(folder, instructor, "grade", ASSIGNMENT, "submitted/", "--out", "autograded/",
                      "--nbgrader-db", "gradebook.db", "--workers", "2")
        assert grading.returncode == 0, grading.stderr[-3000:]
        assert "graded 1, unchanged and skipped 3" in grading.stdout, grading.stdout  # the class was graded before

        with running_lab(base / "instructor-lab", folder, HOME=str(instructor),
                         JUPYTER_CONFIG_DIR=str(instructor / ".jupyter")) as (iurl, itoken):
            # the instructor's own browser session (the formgrader's pages call its API with his token)
            with browsing(page.context.browser, "formgrader",
                          extra_http_headers={"Authorization": f"token {itoken}"}) as formgrader:
                instructor_side(formgrader, folder, instructor, iurl, itoken)

        assignment_list(page, url, token)
        page.get_by_role("button", name="Fetch Feedback").first.click()
        page.get_by_text("(view feedback)").first.click()
        page.get_by_text(f"{ASSIGNMENT}.html").first.dblclick()
        frame = page.frame_locator(".jp-HTMLViewer iframe").first
        frame.get_by_text(BUG_MESSAGE).first.wait_for(timeout=60_000)
        shot(page, "student-feedback")


def opened_unmodified(context, url: str, token: str) -> None:
    """dave opens the fetched notebook (in a tab of its own): once its kernel's info is in, the notebook is not
    modified (its language_info is the kernel's), as long as his Python is the one the course's notebooks record."""
    page = context.new_page()
    try:
        page.goto(f"{url}/lab/tree/{ASSIGNMENT}/{ASSIGNMENT}.ipynb?reset&token={token}")
        page.locator(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(
            timeout=LOADING_MS)
        state = page.evaluate(OPENED_STATE)
        shot(page, "student-opened")
        version = state["notebook"].pop("version", None)
        assert {k: v for k, v in state["kernel"].items() if k != "version"} == state["notebook"], state
        assert state["dirty"] == (state["kernel"]["version"] != version), (state, version)
        tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=f"{ASSIGNMENT}.ipynb").first
        assert ("jp-mod-dirty" in tab.get_attribute("class")) == state["dirty"]
    finally:
        page.close()


def submission_rows(page) -> dict[str, dict[str, str]]:
    """Manage Submissions' table: student id -> its status and score, once every row has a status."""
    page.locator("#main-table tr td.status span").first.wait_for(timeout=LOADING_MS)
    return {row.locator("td.student-id").inner_text().strip(): {
        "status": row.locator("td.status").inner_text().strip(), "score": row.locator("td.score").inner_text().strip()}
        for row in page.locator("#main-table tr").all()}


def instructor_side(page, folder: Path, instructor: Path, url: str, token: str) -> None:
    page.goto(f"{url}/lab?reset")
    page.locator(f"#{CREATE_ASSIGNMENT}").wait_for(state="attached", timeout=LOADING_MS)
    page.goto(f"{url}/formgrader/manage_submissions/{ASSIGNMENT}?token={token}")
    rows = submission_rows(page)
    shot(page, "formgrader-submissions")
    assert rows == {"alice": {"status": "graded", "score": "56 / 56"}, "bob": {"status": "graded", "score": "54 / 56"},
                    "carol": {"status": "graded", "score": "0 / 56"},
                    "dave": {"status": "graded", "score": "54 / 56"}}, rows

    page.goto(f"{url}/formgrader/manage_students?token={token}")
    page.locator("#main-table tr td.score").first.wait_for(timeout=LOADING_MS)
    students = {row.locator("td").nth(1).inner_text().strip(): row.inner_text()
                for row in page.locator("#main-table tr").all()}
    shot(page, "formgrader-students")
    assert "56 / 56" in students["alice"] and "54 / 56" in students["dave"], students

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{folder / 'gradebook.db'}") as gb:
        submission = gb.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, "dave").id
    page.goto(f"{url}/formgrader/submissions/{submission}/?token={token}")
    page.locator("input.score#test_pool2d").wait_for(timeout=LOADING_MS)
    page.wait_for_function("() => [...document.querySelectorAll('input.score')].every(input => "  # grades loaded
                           "input.getAttribute('placeholder') !== null)", timeout=LOADING_MS)
    scores = {cell: page.locator(f"input.score#{cell}").get_attribute("placeholder")
              for cell in ("test_corr2d", "test_conv_output_shape", "test_corr2d_multi_in_out", "test_pool2d",
                           "test_Conv2D")}
    assert scores == {"test_corr2d": "20", "test_conv_output_shape": "13", "test_corr2d_multi_in_out": "7",
                      "test_pool2d": "9", "test_Conv2D": "5"}, scores
    page.locator("input.score#test_Conv2D").fill("3")
    page.locator("textarea#pool2d-comment").fill("avg is a mode too: see the spec")
    page.locator("input.score#test_Conv2D").press("Tab")
    deadline = time.monotonic() + 30
    while manual(folder, "dave", "test_Conv2D") != 3.0 and time.monotonic() < deadline:
        time.sleep(0.5)
    shot(page, "formgrader-manual-grading")
    assert manual(folder, "dave", "test_Conv2D") == 3.0

    nbgrader(instructor, folder, "export")
    with open(folder / "grades.csv", newline="") as table:
        exported = {row["student_id"]: row["score"] for row in csv.DictReader(table)}
    assert {s: float(v) for s, v in exported.items()} == {"alice": 56, "bob": 54, "carol": 0, "dave": 52}, exported

    dave = folder / "autograded" / "dave" / ASSIGNMENT
    before = {name: digest(dave / name) for name in (f"{ASSIGNMENT}.ipynb", "feedback.txt", "feedback.html")}
    page.goto(f"{url}/formgrader/manage_submissions/{ASSIGNMENT}?token={token}")
    submission_rows(page)
    row = page.locator("#main-table tr", has=page.locator("td.student-id", has_text="dave"))
    row.locator("td.autograde a").click()
    page.get_by_text("Successfully autograded").wait_for(timeout=240_000)
    shot(page, "formgrader-autograded")
    assert "conv_basics on cpu: graded 1" in page.locator("#success-modal pre").inner_text()  # by the kit, sandboxed
    page.locator(".modal-footer button").first.click()
    assert {name: digest(dave / name) for name in before} == before and (dave / "results.json").is_file()
    assert submission_rows(page)["dave"] == {"status": "graded", "score": "52 / 56"}
    row = page.locator("#main-table tr", has=page.locator("td.student-id", has_text="dave"))
    row.locator("td.generate-feedback a").click()
    page.get_by_text("Successfully generated feedback").wait_for(timeout=120_000)
    page.locator(".modal-footer button").first.click()
    row.locator("td.release-feedback a").click()
    page.get_by_text("Successfully released feedback").wait_for(timeout=60_000)
    shot(page, "formgrader-feedback-released")
