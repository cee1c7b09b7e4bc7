"""The built book in a real browser (Chromium via Playwright), served from 127.0.0.1.

Each page in the table of contents must load with no failed local request and no request to another host
(the book works offline), show its images, typeset its math, and have working internal links. A full-page
screenshot of every page goes to _build/screenshots/<page>.png for a human to look at.

Every page of the site must pass axe-core (pinned in tools/package.json, injected into the page as its maintainers
do with Playwright) with the WCAG 2.0/2.1 A and AA rules and axe's best practices: no violation of any impact.
Every page has one search field, the sidebar's (no top bar holding a second one); every chapter page starts with
the chapter's own code, while the notebook its download button gives starts with the install cell.
Each chapter's "Check yourself" answers stay hidden until opened; the shape explorer, driven by keyboard through a
sample of PyTorch's own table of output shapes (_static/pytorch_shapes.json: convolution, pooling and transposed
convolution, with dilation, different settings for height and width), must display what PyTorch computes.
Screenshots of the explorer and of an opened answer go to _build/screenshots/ as well.
"""
from __future__ import annotations

import json
import random
import re
from pathlib import Path
from urllib.parse import urldefrag, urlparse
from urllib.request import urlopen

import pytest

from test_book import CHAPTERS, html_pages, toc_files

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "_build" / "screenshots"
AXE = ROOT / "tools" / "node_modules" / "axe-core" / "axe.min.js"
AXE_RULES = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]},
             "resultTypes": ["violations"]}
CHAPTER_PAGES = [f"book/{chapter}" for chapter in CHAPTERS]
MATH_PAGES = {*CHAPTER_PAGES, "book/assignments/conv_basics", "book/assignments/receptive_fields"}
VISIBLE_OUTPUTS = {
    "book/01_cross_correlation": "[[19., 25.],",
    "book/03_stride": "[[0., 8.],",
    "book/06_simple_convnet": "Total params: 13,686",
    "book/07_convnet_vs_fc": "final test accuracy",
    "book/08_dilation_transposed": "the transposed formula matches PyTorch",
}


@pytest.fixture(scope="module")
def site(built_site, serve):
    return serve(built_site)


@pytest.fixture(scope="module")
def visits(site, browser):
    """Load every page once; record problems, links and screenshots for the tests below."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    host = urlparse(site).netloc
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    results = {}
    for doc in toc_files():
        page = context.new_page()
        problems: list[str] = []
        page.on("requestfailed", lambda r, p=problems: p.append(f"failed: {r.url} ({r.failure})"))
        page.on("response", lambda r, p=problems: r.status >= 400 and p.append(f"HTTP {r.status}: {r.url}"))
        page.on("request", lambda r, p=problems: urlparse(r.url).scheme in ("http", "https")
                and urlparse(r.url).netloc != host and p.append(f"external request: {r.url}"))
        page.on("pageerror", lambda e, p=problems: p.append(f"JavaScript error: {e}"))
        page.goto(f"{site}/{doc}.html", wait_until="networkidle")
        if doc in MATH_PAGES:
            page.wait_for_selector("mjx-container", state="attached", timeout=20_000)
        page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=20_000)
        results[doc] = {
            "problems": problems,
            "search_fields": page.locator(".search-button-field:visible").count(),
            "sidebar_search_fields": page.locator("#pst-primary-sidebar .search-button-field:visible").count(),
            "header_height": page.evaluate("document.getElementById('pst-header').getBoundingClientRect().height"),
            "first_code": page.locator("div.cell_input").first.inner_text() if doc in CHAPTER_PAGES else None,
            "notebook": notebook_cells(page) if doc in CHAPTER_PAGES else None,
            "math": page.locator("mjx-container").count(),
            "broken_images": page.evaluate(
                "Array.from(document.images).filter(i => !(i.naturalWidth > 0)).map(i => i.src.slice(0, 80))"),
            "images": page.evaluate("document.images.length"),
            "links": page.evaluate("Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"),
            "visible": {text: page.get_by_text(text, exact=False).first.is_visible()
                        for key, text in VISIBLE_OUTPUTS.items() if key == doc},
        }
        page.screenshot(path=str(SCREENSHOTS / f"{doc.replace('/', '_')}.png"), full_page=True)
        results[doc]["axe"] = axe_violations(page)  # test_every_page_passes_axe's, without loading the page again
        page.close()
    context.close()
    return results


def notebook_cells(page) -> list[dict]:
    """The cells of the notebook behind the page's download button, fetched as the reader's browser would."""
    (href,) = set(page.locator("a[href$='.ipynb']:not([href^='http'])").evaluate_all("links => links.map(a => a.href)"))
    response = page.request.get(href)
    assert response.ok, f"{href}: HTTP {response.status}"
    return response.json()["cells"]


def test_pages_load_without_failed_or_external_requests(visits):
    for doc, result in visits.items():
        assert result["problems"] == [], f"{doc}: {result['problems']}"


def test_images_load(visits):
    for doc, result in visits.items():
        assert result["broken_images"] == [], f"{doc}: {result['broken_images']}"
    assert visits["book/02_padding"]["images"] >= 2  # a figure and the animation's frame


def test_math_is_typeset(visits):
    for doc in MATH_PAGES:
        assert visits[doc]["math"] > 0, f"{doc}: no typeset math"


def test_executed_outputs_are_visible(visits):
    for doc, text in VISIBLE_OUTPUTS.items():
        assert visits[doc]["visible"] == {text: True}, f"{doc}: {text!r} not visible"


def test_one_search_field_and_no_empty_top_bar(visits):
    """The sidebar's search field is the only one, and the theme's top bar, which would hold nothing but a second
    one (navbar_persistent in _config.yml), takes no room."""
    for doc, result in visits.items():
        assert (result["search_fields"], result["sidebar_search_fields"]) == (1, 1), f"{doc}: {result}"
        assert result["header_height"] == 0, f"{doc}: a top bar {result['header_height']} px high"


def test_install_cell_hidden_on_the_site_but_first_in_the_notebook(visits):
    for doc in CHAPTER_PAGES:
        result = visits[doc]
        assert "import torch" in result["first_code"] and "pip install" not in result["first_code"], (
            f"{doc}: the first code on the page is\n{result['first_code']}")
        first = next(cell for cell in result["notebook"] if cell["cell_type"] == "code")
        source = "".join(first["source"])
        assert "%pip install" in source and "import coursekit" in source, f"{doc}.ipynb starts with\n{source}"
        assert first["metadata"]["tags"] == ["remove-cell"], f"{doc}.ipynb: {first['metadata']}"


def test_screenshots_saved(visits):
    for doc in visits:
        shot = SCREENSHOTS / f"{doc.replace('/', '_')}.png"
        assert shot.is_file() and shot.stat().st_size > 10_000, shot


def test_internal_links_resolve(visits, site):
    host = urlparse(site).netloc
    targets = {urldefrag(link).url for result in visits.values() for link in result["links"]
               if urlparse(link).netloc == host}
    assert len(targets) > 20
    for url in sorted(targets):
        with urlopen(url) as response:  # raises HTTPError on 404
            assert response.status == 200, url


def test_search_finds_the_stride_chapter(site, browser):
    page = browser.new_page()
    try:
        page.goto(f"{site}/search.html?q=stride", wait_until="networkidle")
        page.wait_for_selector("#search-results li a", timeout=20_000)
        hrefs = page.eval_on_selector_all("#search-results li a", "els => els.map(a => a.href)")
        assert any(re.search(r"/book/03_stride\.html", href) for href in hrefs), hrefs
    finally:
        page.close()


# ---------------------------------------------------------------------------------------------------------------
# Accessibility: axe-core on every page

def axe_violations(page) -> list[str]:
    """Run the pinned axe-core in the page; one line per violation: rule, impact, the first offending nodes."""
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: `make test` installs it (`cd tools && npm ci`).")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    assert page.evaluate("axe.version").startswith("4.14."), "tools/package.json pins axe-core 4.14"
    # a just-opened answer fades in (MyST-NB's CSS animation): judge the colours it ends with
    page.wait_for_function("document.getAnimations().every(a => a.playState !== 'running')")
    result = page.evaluate("rules => axe.run(document, rules)", AXE_RULES)
    return [f"{v['id']} ({v['impact']}, {len(v['nodes'])} nodes): {v['help']}; "
            f"{[node['target'] for node in v['nodes'][:3]]}" for v in result["violations"]]


@pytest.fixture(scope="module")
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert errors == [], f"JavaScript errors: {errors}"


def test_every_page_passes_axe(built_site, site, page, visits):
    """The pages of the table of contents were judged as ``visits`` loaded them; the others are loaded here."""
    pages = sorted(path.relative_to(built_site).as_posix() for path in html_pages(built_site))
    assert {"search.html", "genindex.html", "book/03_stride.html"} <= set(pages)
    found = {f"{doc}.html": result["axe"] for doc, result in visits.items()}
    assert set(found) <= set(pages), set(found) - set(pages)
    for name in pages:
        if name not in found:
            page.goto(f"{site}/{name}", wait_until="networkidle")
            found[name] = axe_violations(page)
    assert {name: v for name, v in found.items() if v} == {}


# ---------------------------------------------------------------------------------------------------------------
# "Check yourself": answers hidden until opened

# One answer per chapter, and a line it must show (PyTorch's answer, as the executed cell printed it).
ANSWERS = {
    "01_cross_correlation": (1, "output shape: (4, 4)"),
    "02_padding": (2, "padding=1: (9, 9)"),
    "03_stride": (3, "stride=3: 10 x 10"),
    "04_channels": (4, "expected input[1, 3, 28, 28] to have 1 channels"),
    "05_pooling": (1, "max pool: tensor([[-1., -1.],"),
    "06_simple_convnet": (2, "mat1 and mat2 shapes cannot be multiplied (1x64 and 36x10)"),
    "07_convnet_vs_fc": (3, "loss 2.3026"),
    "08_dilation_transposed": (3, "kernel 6: interior counts [4.0]"),
}


def test_self_check_answers_are_shown_only_when_opened(site, page):
    assert set(ANSWERS) == set(CHAPTERS)
    for chapter, (number, text) in ANSWERS.items():
        page.goto(f"{site}/book/{chapter}.html", wait_until="networkidle")
        answers = page.locator("section#check-yourself details")
        assert 3 <= answers.count() <= 5, f"{chapter}: {answers.count()} answers"
        answer = answers.filter(has=page.get_by_text(f"Show the answer to question {number}", exact=True))
        shown = answer.get_by_text(text, exact=False)
        assert shown.count() == 1, f"{chapter}: answer {number} does not contain {text!r}"
        assert not shown.is_visible(), f"{chapter}: answer {number} is visible before it is opened"
        answer.locator("summary").focus()
        page.keyboard.press("Enter")  # opened by keyboard, as any reader can
        shown.wait_for(state="visible", timeout=5_000)
        assert answer.get_by_text(f"Hide the answer to question {number}", exact=True).is_visible()
        others = answers.locator(".cell_output")
        hidden = [i for i in range(answers.count()) if i != number - 1 and not others.nth(i).is_visible()]
        assert len(hidden) == answers.count() - 1, f"{chapter}: opening answer {number} opened others"
        assert axe_violations(page) == [], f"{chapter} with answer {number} open"
        if chapter == "05_pooling":
            answer.scroll_into_view_if_needed()
            answer.screenshot(path=str(SCREENSHOTS / "self_check_answer.png"))
        page.keyboard.press("Enter")
        shown.wait_for(state="hidden", timeout=5_000)
    assert (SCREENSHOTS / "self_check_answer.png").stat().st_size > 5_000


# ---------------------------------------------------------------------------------------------------------------
# The shape explorer against PyTorch's table

def pytorch_table(built_site: Path) -> list[dict]:
    table = json.loads((built_site / "_static" / "pytorch_shapes.json").read_text(encoding="utf8"))
    return [dict(zip(table["columns"], row)) for row in table["rows"]]


def sample(rows: list[dict], per_outcome: int = 6) -> list[dict]:
    """A fixed sample: for each operation, some configurations PyTorch computes and some it refuses."""
    rng = random.Random(16)
    chosen = []
    for operation in ("conv", "max", "avg", "transposed"):
        for refused in (False, True):
            group = [r for r in rows if r["operation"] == operation and (r["output"] is None) == refused]
            chosen += rng.sample(group, per_outcome)
    return chosen


SETTINGS = {"input": "Input size n", "kernel": "Kernel size k", "padding": "Padding p (per side)",
            "stride": "Stride s", "dilation": "Dilation d", "output-padding": "Output padding"}


def set_number(field, value: int) -> None:
    """Replace a number field's value by typing, as a keyboard user does (each press focuses the field first)."""
    field.press("Control+a")
    field.press_sequentially(str(value))


def expected_reason(row: dict) -> str:
    """What the explorer must say for a configuration PyTorch refuses, from PyTorch's own message."""
    if "half of" in row["error"]:
        return "at most half the window"
    if "output padding must be smaller" in row["error"]:
        return "smaller than the stride or the dilation"
    return "crops more" if row["operation"] == "transposed" else "does not fit"


def explorer_cells(explorer) -> list[tuple[int, int]]:
    """(rows, columns) of the two drawn grids, counted from the SVG's cells and their positions."""
    grids = []
    for i in range(2):
        cells = explorer.locator("figure").nth(i).locator("rect.cell")
        xs, ys = cells.evaluate_all("cells => [cells.map(c => c.getAttribute('x')), "
                                    "cells.map(c => c.getAttribute('y'))]")
        grids.append((len(set(ys)), len(set(xs))))
    return grids


def test_explorer_agrees_with_pytorch(built_site, site, page):
    page.goto(f"{site}/book/03_stride.html", wait_until="networkidle")
    explorers = page.locator("section.shape-explorer")
    assert explorers.count() == 2  # the stride's, then the dilation's
    explorer = explorers.first
    explorer.get_by_label("Width as height", exact=True).uncheck()
    fields = {(key, axis): explorer.get_by_role("spinbutton", name=f"{label} {axis}", exact=True)
              for key, label in SETTINGS.items() for axis in ("height", "width")}
    shape = explorer.locator(".shape-explorer__shape")
    problems = explorer.locator(".shape-explorer__problems li")
    for row in sample(pytorch_table(built_site)):
        explorer.get_by_label("Operation", exact=True).select_option(row["operation"])
        for (key, axis), field in fields.items():
            if key == "output-padding" and row["operation"] != "transposed":
                assert not field.is_visible()  # only a transposed convolution has one
                continue
            set_number(field, row[key][0 if axis == "height" else 1])
        where = f"{row} (PyTorch: {row['output'] or row['error']})"
        if row["output"] is None:
            assert shape.inner_text() == "Output: none (impossible)", where
            reasons = " ".join(problems.all_inner_texts())
            assert expected_reason(row) in reasons, f"{where}: explained as {reasons!r}"
            assert not explorer.locator(".shape-explorer__drawings").is_visible(), f"{where}: drawn anyway"
            continue
        o_h, o_w = row["output"]
        assert shape.inner_text() == f"Output: {o_h} \u00d7 {o_w}", where
        assert problems.count() == 0, where
        formulas = explorer.locator(".shape-explorer__formula li").all_inner_texts()
        assert [f.endswith(f"= {o}") for f, o in zip(formulas, (o_h, o_w))] == [True, True], f"{where}: {formulas}"
        (n_h, n_w), (p_h, p_w) = row["input"], row["padding"]
        if row["operation"] == "transposed":  # input, then the output before cropping
            (s_h, s_w), (d_h, d_w), (k_h, k_w) = row["stride"], row["dilation"], row["kernel"]
            full = [(n - 1) * s + d * (k - 1) + 1 for n, s, d, k in [(n_h, s_h, d_h, k_h), (n_w, s_w, d_w, k_w)]]
            expected = [(n_h, n_w), (max(full[0], p_h + o_h), max(full[1], p_w + o_w))]
        else:  # padded input, then the output
            expected = [(n_h + 2 * p_h, n_w + 2 * p_w), (o_h, o_w)]
        assert explorer_cells(explorer) == expected, f"{where}: drew {explorer_cells(explorer)}"


def test_explorer_works_by_keyboard(site, page):
    page.goto(f"{site}/book/02_padding.html", wait_until="networkidle")
    explorer = page.locator("section.shape-explorer")
    explorer.get_by_label("Operation", exact=True).focus()
    order = []
    for _ in range(9):
        order.append(page.evaluate("document.activeElement.name || document.activeElement.textContent"))
        page.keyboard.press("Tab")
    # the width column follows the height column while "Width as height" is ticked, and output padding is a
    # transposed convolution's only
    assert order == ["operation", "same", "input-height", "kernel-height", "padding-height", "stride-height",
                     "dilation-height", "Previous window", "Play"], order

    shape = explorer.locator(".shape-explorer__shape")
    assert shape.inner_text() == "Output: 4 \u00d7 4"  # the chapter's example: n 3, k 2, padding 1
    explorer.get_by_role("spinbutton", name="Input size n height", exact=True).focus()
    page.keyboard.press("ArrowUp")
    assert shape.inner_text() == "Output: 5 \u00d7 5"
    assert explorer.get_by_role("spinbutton", name="Input size n width", exact=True).input_value() == "4"
    position = explorer.locator(".shape-explorer__position")
    assert position.inner_text().startswith("Window 1 of 25:")
    explorer.get_by_role("button", name="Next window").focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    assert position.inner_text().startswith("Window 3 of 25: output element (0, 2)")
    play = explorer.locator(".shape-explorer__stepper button").nth(1)  # "Play", then "Pause"
    play.focus()
    page.keyboard.press("Space")
    assert play.get_attribute("aria-pressed") == "true" and play.inner_text() == "Pause"
    page.wait_for_function("document.querySelector('.shape-explorer__position').textContent.startsWith('Window 4')")
    page.keyboard.press("Space")
    assert play.get_attribute("aria-pressed") == "false"

    same = explorer.get_by_label("Width as height", exact=True)
    same.focus()
    page.keyboard.press("Space")  # untick: the width gets its own settings
    width = explorer.get_by_role("spinbutton", name="Kernel size k width", exact=True)
    set_number(width, 3)
    assert shape.inner_text() == "Output: 5 \u00d7 4"
    explorer.scroll_into_view_if_needed()
    explorer.screenshot(path=str(SCREENSHOTS / "shape_explorer.png"))
    assert axe_violations(page) == []

    stride = explorer.get_by_role("spinbutton", name="Stride s height", exact=True)
    set_number(stride, 0)
    assert stride.get_attribute("aria-invalid") == "true"
    assert explorer.locator(".shape-explorer__problems").inner_text() == \
        "Stride s (height) must be a whole number from 1 to 5."
    assert shape.inner_text() == "Output: none (fix the settings)"
    assert axe_violations(page) == []
    assert (SCREENSHOTS / "shape_explorer.png").stat().st_size > 10_000


def test_explorer_draws_dilation_and_transposed_convolutions(site, page):
    page.goto(f"{site}/book/03_stride.html", wait_until="networkidle")
    dilated = page.locator("section.shape-explorer").nth(1)
    assert dilated.locator(".shape-explorer__shape").inner_text() == "Output: 3 \u00d7 3"  # 7, k 3, d 2
    assert dilated.locator("rect.cell--shaded").count() == 9 + 1  # the kernel's nine elements, one output
    assert dilated.locator(".shape-explorer__position").inner_text().startswith(
        "Window 1 of 9: output element (0, 0) reads padded-input rows 0 to 4, every 2")
    assert axe_violations(page) == []
    page.goto(f"{site}/book/08_dilation_transposed.html", wait_until="networkidle")
    transposed = page.locator("section.shape-explorer")
    assert transposed.count() == 1
    assert transposed.locator(".shape-explorer__shape").inner_text() == "Output: 6 \u00d7 6"
    assert transposed.locator(".shape-explorer__formula").inner_text().endswith("+ 1 + 1 = 6")
    transposed.get_by_role("button", name="Next element").click()
    assert transposed.locator(".shape-explorer__position").inner_text().startswith(
        "Element 2 of 9: input element (0, 1) adds its value times the kernel to rows 0 to 2, columns 2 to 4")
    assert explorer_cells(transposed) == [(3, 3), (7, 7)]  # (3 - 1) * 2 + 3 = 7 before cropping
    transposed.scroll_into_view_if_needed()
    transposed.screenshot(path=str(SCREENSHOTS / "shape_explorer_transposed.png"))
    assert axe_violations(page) == []
