"""The built book in a real browser (Chromium via Playwright), served from 127.0.0.1.

Each page in the table of contents must load with no failed local request and no request to another host
(the book works offline), show its images, typeset its math, and have working internal links. A full-page
screenshot of every page goes to _build/screenshots/<page>.png for a human to look at.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urldefrag, urlparse
from urllib.request import urlopen

import pytest

from test_book import toc_files

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "_build" / "screenshots"
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
