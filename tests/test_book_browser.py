"""The built book in a real browser (Chromium via Playwright), served from 127.0.0.1.

Each page in the table of contents must load with no failed local request and no request to another host
(the book works offline), show its images, typeset its math, and have working internal links. A full-page
screenshot of every page goes to _build/screenshots/<page>.png for a human to look at.

Every page of the site must pass axe-core (pinned in tools/package.json, injected into the page as its maintainers
do with Playwright) with the WCAG 2.0/2.1 A and AA rules and axe's best practices: no violation of any impact.
Every page has one search field, the sidebar's (no top bar holding a second one); every chapter page starts with
the chapter's own code, while the notebook its download button gives starts with the install cell.
Each chapter's "Check yourself" answers stay hidden until opened; the shape explorer, driven by keyboard through a
sample of PyTorch's own table of output shapes (_static/pytorch_shapes.json), must display what PyTorch computes.
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
MATH_PAGES = {"book/01_cross_correlation", "book/02_padding", "book/03_stride", "book/04_channels",
              "book/05_pooling", "book/06_simple_convnet", "book/07_convnet_vs_fc", "book/assignments/conv_basics"}
VISIBLE_OUTPUTS = {
    "book/01_cross_correlation": "[[19., 25.],",
    "book/03_stride": "[[0., 8.],",
    "book/06_simple_convnet": "Total params: 13,686",
    "book/07_convnet_vs_fc": "final test accuracy",
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


def test_every_page_passes_axe(built_site, site, page):
    pages = sorted(path.relative_to(built_site).as_posix() for path in html_pages(built_site))
    assert {"search.html", "genindex.html", "book/03_stride.html"} <= set(pages)
    found = {}
    for name in pages:
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
    return json.loads((built_site / "_static" / "pytorch_shapes.json").read_text(encoding="utf8"))["rows"]


def sample(rows: list[dict], per_outcome: int = 8) -> list[dict]:
    """A fixed sample: for each operation, some configurations PyTorch computes and some it refuses."""
    rng = random.Random(10)
    chosen = []
    for operation in ("conv", "max", "avg"):
        for refused in (False, True):
            group = [r for r in rows if r["operation"] == operation and (r["output"] is None) == refused]
            chosen += rng.sample(group, per_outcome)
    return chosen


def set_number(field, value: int) -> None:
    """Replace a number field's value by typing, as a keyboard user does."""
    field.focus()
    field.press("Control+a")
    field.press_sequentially(str(value))


def test_explorer_agrees_with_pytorch(built_site, site, page):
    page.goto(f"{site}/book/03_stride.html", wait_until="networkidle")
    explorer = page.locator("section.shape-explorer")
    assert explorer.count() == 1
    fields = {key: explorer.get_by_label(label, exact=True) for key, label in
              [("input", "Input size n"), ("kernel", "Kernel size k"), ("padding", "Padding p (per side)"),
               ("stride", "Stride s")]}
    shape = explorer.locator(".shape-explorer__shape")
    problems = explorer.locator(".shape-explorer__problems li")
    for row in sample(pytorch_table(built_site)):
        explorer.get_by_label("Operation", exact=True).select_option(row["operation"])
        for key, field in fields.items():
            set_number(field, row[key])
        n, k, p, s = (row[key] for key in ("input", "kernel", "padding", "stride"))
        where = f"{row} (PyTorch: {row['output'] or row['error']})"
        if row["output"] is None:
            assert shape.inner_text() == "Output: none (impossible)", where
            reasons = " ".join(problems.all_inner_texts())
            expected = "at most half the window" if "at most half" in row["error"] else "does not fit"
            assert expected in reasons, f"{where}: explained as {reasons!r}"
            assert not explorer.locator(".shape-explorer__drawings").is_visible(), f"{where}: drawn anyway"
            continue
        o = row["output"][0]
        assert row["output"] == [o, o]
        assert shape.inner_text() == f"Output: {o} \u00d7 {o}", where
        assert problems.count() == 0, where
        formula = explorer.locator(".shape-explorer__formula").inner_text()
        assert f"\u230a({n} + 2\u00b7{p} \u2212 {k}) / {s}\u230b + 1" in formula and formula.endswith(f"= {o}"), \
            f"{where}: {formula!r}"
        padded = n + 2 * p
        drawn = [explorer.locator("figure").nth(i).locator("rect.cell").count() for i in range(2)]
        assert drawn == [padded * padded, o * o], f"{where}: drew {drawn} cells"


def test_explorer_works_by_keyboard(site, page):
    page.goto(f"{site}/book/02_padding.html", wait_until="networkidle")
    explorer = page.locator("section.shape-explorer")
    explorer.get_by_label("Operation", exact=True).focus()
    order = []
    for _ in range(7):
        order.append(page.evaluate("document.activeElement.name || document.activeElement.textContent"))
        page.keyboard.press("Tab")
    assert order == ["operation", "input", "kernel", "padding", "stride", "Previous window", "Play"], order

    shape = explorer.locator(".shape-explorer__shape")
    assert shape.inner_text() == "Output: 4 \u00d7 4"  # the chapter's example: n 3, k 2, padding 1
    explorer.get_by_label("Input size n", exact=True).focus()
    page.keyboard.press("ArrowUp")
    assert shape.inner_text() == "Output: 5 \u00d7 5"
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
    explorer.scroll_into_view_if_needed()
    explorer.screenshot(path=str(SCREENSHOTS / "shape_explorer.png"))
    assert axe_violations(page) == []

    stride = explorer.get_by_label("Stride s", exact=True)
    set_number(stride, 0)
    assert stride.get_attribute("aria-invalid") == "true"
    assert explorer.locator(".shape-explorer__problems").inner_text() == "Stride s must be a whole number from 1 to 5."
    assert shape.inner_text() == "Output: none (fix the settings)"
    assert axe_violations(page) == []
    assert (SCREENSHOTS / "shape_explorer.png").stat().st_size > 10_000
