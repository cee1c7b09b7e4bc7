"""Static checks of the built book (`_build/html`, built once per session by the `built_site` fixture)."""
from __future__ import annotations

import html
import json
import re
import zipfile
from html.parser import HTMLParser
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ["01_cross_correlation", "02_padding", "03_stride", "04_channels", "05_pooling", "06_simple_convnet",
            "07_convnet_vs_fc", "08_dilation_transposed"]
EXPLORER_PAGES = ("02_padding", "03_stride", "05_pooling", "08_dilation_transposed")
MARKERS = ["BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"]
TEXT_SUFFIXES = {".html", ".js", ".txt", ".ipynb", ".md", ".json", ".css", ".py"}


def toc_files() -> list[str]:
    """Every document listed in _toc.yml, as paths without suffix (e.g. 'book/03_stride')."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


def page_text(site: Path, name: str) -> str:
    """The visible text of a page, with HTML entities decoded and tags removed."""
    raw = (site / "book" / f"{name}.html").read_text(encoding="utf8")
    return html.unescape(re.sub(r"<[^>]+>", "", raw))


def html_pages(site: Path) -> list[Path]:
    return [p for p in site.rglob("*.html") if "_static" not in p.parts]


def test_every_toc_page_exists(built_site):
    files = toc_files()
    assert {f"book/{c}" for c in CHAPTERS} <= set(files)
    assert {"book/assignments/conv_basics", "book/assignments/cnn_vs_fc", "book/assignments/receptive_fields",
            "book/instructors", "book/grading"} <= set(files)
    for file in files:
        assert (built_site / f"{file}.html").is_file(), f"{file} was not built"
    assert (built_site / "index.html").is_file() and (built_site / "search.html").is_file()


def test_only_toc_files_become_pages(built_site):
    """solutions/, exercises/, autograder/, tests/, README.md and the like never become pages."""
    built = {p.relative_to(built_site).with_suffix("").as_posix() for p in html_pages(built_site)}
    assert built - {"index", "search", "genindex"} == set(toc_files())


def test_executed_outputs_present(built_site):
    ch1 = page_text(built_site, "01_cross_correlation")
    assert re.search(r"\[\[19\., 25\.\],\s*\[37\., 43\.\]\]", ch1), "corr2d(X, K) output missing"
    assert re.search(r"\[\[19, 25\],\s*\[37, 43\]\]", ch1), "integer form of the example missing"
    assert "learned kernel" in ch1
    assert re.search(r"dense layer: +615,440 parameters\s+convolution: +10 parameters", ch1)
    assert re.search(r"\[\[ ?5\., 11\.\],\s*\[23\., 29\.\]\]", ch1), "the convolution's index shift example"
    ch5 = page_text(built_site, "05_pooling")
    # pooling and shifts: each row is a shift s, then in place, moved back, pooled and moved back, global max, dense
    assert re.search(r"\n\s*1\s+0%\s+100%\s+\d+%\s+100%\s+0%", ch5)
    assert re.search(r"\n\s*2\s+0%\s+100%\s+100%\s+100%\s+0%", ch5)
    assert "size, jump and start agree with autograd for all 2136 stacks" in ch5
    ch2 = page_text(built_site, "02_padding")
    assert "full padding: n + k - 1 outputs along each axis" in ch2
    ch3 = page_text(built_site, "03_stride")
    assert re.search(r"\[\[0\., 8\.\],\s*\[6\., 8\.\]\]", ch3), "stride-(3, 2) example output missing"
    assert "the formula matches PyTorch for every case" in ch3
    assert "the dilated formula matches PyTorch for convolution and max pooling" in ch3  # dilation beside stride
    assert "dilations (1, 2, 4): spans 15 x 15 pixels, reads 225 of them" in ch3
    ch6 = page_text(built_site, "06_simple_convnet")
    assert "Total params: 13,686" in ch6 and "Total mult-adds (Units.MEGABYTES): 61.13" in ch6
    assert re.search(r"total +13,686 +54,744 +934,760 +45,362 +181,448", ch6), "the ConvNet's costs (ReLUs included)"
    assert re.search(r"total +61,706 +246,824 +416,520", ch6), "LeNet's costs"
    assert re.search(r"one 7 x 7: sees 7 x 7 pixels; 200,768 parameters", ch6)
    assert re.search(r"three 3 x 3: sees 7 x 7 pixels; 110,784 parameters", ch6)
    ch7 = page_text(built_site, "07_convnet_vs_fc")
    assert "Data: the " in ch7  # coursekit.mnist.describe()
    for net, params in [("ConvNet", "13,686"), ("LeNet", "61,706"), ("FC net", "27,040")]:
        assert re.search(rf"{net}: final test accuracy \d+\.\d\d% \({params} parameters, test loss \d\.\d+, "
                         r"\d+\.\d s for 4 epochs\)", ch7), f"{net}'s accuracy, parameters and time"
    assert re.search(r"an epoch of the ConvNet took \d+\.\d times as long as one of the FC net", ch7)
    assert re.search(r"keeps \d+\.\d MB for a backward pass; under torch.no_grad\(\), nothing", ch7)
    ch8 = page_text(built_site, "08_dilation_transposed")
    assert "the transposed formula matches PyTorch" in ch8


def test_reviewed_passages_say_what_is_true():
    """The passages an instructor's review found inexact (issues 16 and 25) stay corrected, and what moved stays in
    one place."""
    src = sources()
    wrong = {"03_stride": ["the only shape formula you need"],
             "06_simple_convnet": ["The last column of the table", "can always be replaced"],
             "05_pooling": ["it is a convolution with\na fixed kernel of equal weights."],
             "07_convnet_vs_fc": ["nothing can leak into the next training step", "trains more slowly per epoch",
                                  "weakest < others.min() / 4", "< 0.9 <"],  # claims that held for seed 0 only
             "01_cross_correlation": ['padding_mode="circular"', "This is the one place"],  # moved, not repeated
             "08_dilation_transposed": ["## Dilation"]}
    for name, phrases in wrong.items():
        for phrase in phrases:
            assert phrase not in src[name], f"{name}: {phrase!r}"
    right = {"03_stride": ["08_dilation_transposed"],
             "06_simple_convnet": ["The *Output Shape* column", "no padding in the second", '("relu3", nn.ReLU())',
                                   "(no-nonlinearities)=", "def make_linear_convnet"],  # ReLUs in the main example
             "05_pooling": ["*depthwise* convolution", "groups=3", "the gradient reaches one pixel per",
                            "(gradient-receptive-field)="],
             "02_padding": ["(padding-and-shifts)=", 'padding_mode="circular"'],
             "04_channels": ["bottleneck", "Network in Network"],
             "01_cross_correlation": ["convolution_at(X, K, 1, 1)", "{ref}`gradient-receptive-field`"]}
    for name, phrases in right.items():
        for phrase in phrases:
            assert phrase in src[name], f"{name}: {phrase!r} missing"


def test_figures_drawn_at_build_time(built_site):
    """Static figures are PNGs produced by the build; the animations are embedded players."""
    for name in ["01_cross_correlation", "02_padding", "03_stride", "05_pooling", "07_convnet_vs_fc",
                 "08_dilation_transposed"]:
        raw = (built_site / "book" / f"{name}.html").read_text(encoding="utf8")
        images = re.findall(r'<img [^>]*src="([^"]+)"', raw)
        assert images, f"{name} has no figure"
        for src in images:
            if not src.startswith("data:"):
                assert (built_site / "book" / src).resolve().is_file(), src
    for name in ["01_cross_correlation", "02_padding", "03_stride", "05_pooling"]:
        raw = (built_site / "book" / f"{name}.html").read_text(encoding="utf8")
        assert "new Animation(" in raw and "data:image/png;base64" in raw, f"{name} has no animation"


@pytest.mark.parametrize("marker", MARKERS)
def test_no_solution_markers_in_site(built_site, marker):
    for path in built_site.rglob("*"):
        if path.is_file() and path.suffix in TEXT_SUFFIXES:
            assert marker not in path.read_text(encoding="utf8", errors="replace"), f"{marker} in {path}"


def test_no_external_scripts_or_stylesheets(built_site):
    """No page loads code, styles or math from a CDN: the book works offline."""
    tag = re.compile(r"<(script|link|img|iframe)\b[^>]*>", re.I)
    external = re.compile(r'\b(src|href)\s*=\s*["\']?(https?:)?//', re.I)
    for page in html_pages(built_site):
        raw = page.read_text(encoding="utf8")
        for match in tag.finditer(raw):
            element = match.group(0)
            if element.lower().startswith("<link") and re.search(r'rel="?(canonical|alternate)', element):
                continue
            assert not external.search(element), f"{page.relative_to(built_site)} loads {element}"
        for cdn in ("cdn.jsdelivr", "maxcdn", "cdnjs", "unpkg.com", "googleapis"):
            assert cdn not in raw, f"{page.relative_to(built_site)} names {cdn}"


def test_math_served_locally(built_site):
    raw = (built_site / "book" / "03_stride.html").read_text(encoding="utf8")
    src = re.search(r'<script[^>]*src="([^"]*mathjax[^"]*)"', raw)
    assert src, "no MathJax script on a page with math"
    assert not src.group(1).startswith(("http", "//"))
    assert (built_site / "book" / src.group(1).split("?")[0]).resolve().is_file()


def test_notebook_download_and_launch_buttons(built_site):
    """The download button gives the executed notebook; Binder and Colab open <page>.ipynb on the notebooks
    branch (what they can run), never the .md source (tests/test_deploy_book.py follows every such URL)."""
    raw = (built_site / "book" / "07_convnet_vs_fc.html").read_text(encoding="utf8")
    assert "_sources/book/07_convnet_vs_fc.ipynb" in raw
    assert (built_site / "_sources" / "book" / "07_convnet_vs_fc.ipynb").is_file()
    assert ("https://mybinder.org/v2/gh/convnets-course/convnets-course/notebooks"
            "?urlpath=lab/tree/book/07_convnet_vs_fc.ipynb") in raw
    assert ("https://colab.research.google.com/github/convnets-course/convnets-course/blob/notebooks/"
            "book/07_convnet_vs_fc.ipynb") in raw
    for page in html_pages(built_site):
        launches = re.findall(r'href="(https://(?:mybinder\.org|colab\.research\.google\.com)/[^"]+)"',
                              page.read_text(encoding="utf8"))
        assert not [url for url in launches if not url.endswith(".ipynb")], f"{page}: {launches}"


def test_assignment_pages_offer_the_released_folder(built_site):
    """Each assignment page links a zip of exercises/<assignment>/ whole (cnn_vs_fc's notebook needs the MNIST
    sample beside it), byte for byte, under the folder name nbgrader's fetch gives."""
    for assignment in ["conv_basics", "cnn_vs_fc", "receptive_fields"]:
        raw = (built_site / "book" / "assignments" / f"{assignment}.html").read_text(encoding="utf8")
        link = re.search(rf'href="([^"]*_downloads/[^"]*/{assignment}\.zip)"', raw)
        assert link, f"no download link to {assignment}.zip"
        released = ROOT / "exercises" / assignment
        expected = {f"{assignment}/{p.relative_to(released).as_posix()}": p.read_bytes()
                    for p in released.rglob("*") if p.is_file()}
        with zipfile.ZipFile((built_site / "book" / "assignments" / link.group(1)).resolve()) as archive:
            assert {name: archive.read(name) for name in archive.namelist()} == expected
        assert "nbgrader validate" in page_text(built_site, f"assignments/{assignment}")


def test_instructor_page_teaches(built_site):
    """The instructors' page is for teaching: objectives for every chapter, a schedule, and misconceptions that
    each name a section and what catches it (a graded test whose suite exists, or a chapter's question)."""
    text = page_text(built_site, "instructors")
    for heading in ["Learning objectives", "A suggested schedule", "Common misconceptions"]:
        assert heading in text, heading
    source = (ROOT / "book" / "instructors.md").read_text(encoding="utf8")
    for chapter in CHAPTERS:
        assert f"**{{doc}}`{chapter}`**" in source, f"no learning objectives for {chapter}"
    rows = [line for line in source.splitlines() if line.startswith("| ") and line.count("|") == 4]
    misconceptions = rows[rows.index(next(r for r in rows if r.startswith("| misconception"))) + 1:]
    assert len(misconceptions) >= 10
    for row in misconceptions:
        for suite, names in re.findall(r"`(conv_basics|cnn_vs_fc)`: (.*?)(?: \|$)", row):
            module = None
            for name in re.findall(r"`([^`]+)`", names):
                module, test = name.split("::") if name.startswith("test_") else (module, name[2:])
                code = (ROOT / "autograder" / "suites" / suite / module).read_text(encoding="utf8")
                assert f"def {test}(" in code, f"{suite}/{module}::{test} named on the instructors' page"


def test_grading_page_commands(built_site):
    text = page_text(built_site, "grading")
    for command in ["make book", "make exercises", "nbgrader generate_assignment",
                    "python -m autograder grade ASSIGNMENT submitted/ --out autograded/ --workers 2",
                    "--device auto|cpu|cuda", "--nbgrader-db gradebook.db", "GitHub Pages"]:
        assert command in text, command


def test_search_index_knows_the_stride_chapter(built_site):
    index = (built_site / "searchindex.js").read_text(encoding="utf8")
    assert "book/03_stride" in index and "stride" in index


# ---------------------------------------------------------------------------------------------------------------
# Checks of the sources (no build needed)

def sources() -> dict[str, str]:
    return {name: (ROOT / "book" / f"{name}.md").read_text(encoding="utf8") for name in CHAPTERS}


def code_cells(text: str) -> list[str]:
    return re.findall(r"```\{code-cell\} ipython3\n(.*?)```", text, re.S)


def test_chapters_are_myst_notebooks():
    for name, text in sources().items():
        assert text.startswith("---\n") and "kernelspec:" in text and "name: python3" in text, name
        assert code_cells(text), name
        assert "torch.manual_seed(" in text, f"{name} does not seed its random numbers"


def test_shape_formulas_are_asserted_against_pytorch():
    src = sources()
    # the general formula, per-side padding, checked in executed cells
    assert re.search(r"assert .*\(n \+ 2 \* p - k\) // s \+ 1", src["03_stride"])
    assert re.search(r"assert .*\(n - k \+ P \+ s\) // s", src["03_stride"])  # total-padding form
    assert re.search(r"assert .*n \+ 2 \* p - k \+ 1", src["02_padding"])  # stride 1
    assert re.search(r"assert .*\(n \+ 2 \* p - k\) // s \+ 1", src["05_pooling"])  # pooling
    assert re.search(r"h, w = \(h \+ 2 \* ph - kh\) // sh \+ 1", src["06_simple_convnet"])
    assert "assert tuple(X.shape) == predicted" in src["06_simple_convnet"]
    assert re.search(r"assert .*n \+ k - 1", src["02_padding"])  # full padding
    assert re.search(r"assert .*\(n \+ 2 \* p - d \* \(k - 1\) - 1\) // s \+ 1", src["03_stride"])
    assert re.search(r"expected = \(n - 1\) \* s - 2 \* p \+ d \* \(k - 1\) \+ q \+ 1", src["08_dilation_transposed"])
    for name in ["02_padding", "03_stride", "05_pooling", "06_simple_convnet", "08_dilation_transposed"]:
        assert any("assert" in cell for cell in code_cells(src[name])), name


def test_book_leaves_the_exercises_to_the_students():
    """The book shows the basic corr2d loop only; the graded API is written by the students."""
    forbidden = [r"def corr2d\([^)]*(padding|stride)", r"def pool2d\b", r"def conv_output_shape\b",
                 r"def corr2d_multi_in_out\b", r"def train_one_epoch\b", r"def evaluate\b", r"class Conv2D\b"]
    for name, text in sources().items():
        code = "\n".join(code_cells(text))
        for pattern in forbidden:
            assert not re.search(pattern, code), f"{name} implements {pattern}"
    assert re.search(r"def corr2d\(X, K\):", sources()["01_cross_correlation"])


# ---------------------------------------------------------------------------------------------------------------
# Accessibility, self-checks and the shape explorer in the built site

class ImageCollector(HTMLParser):
    """The attributes of every <img> in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict] = []

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "img":
            self.images.append(dict(attrs))


def test_every_figure_says_what_it_shows(built_site):
    """Alt text describes the figure (a sentence or more), never a file name or nothing."""
    figures = 0
    for page in html_pages(built_site):
        collector = ImageCollector()
        collector.feed(page.read_text(encoding="utf8"))
        for image in collector.images:
            src = image.get("src", "")  # an animation's frame gets its src from the player's script
            where = f"{page.relative_to(built_site)}: {src[:60] or image.get('id')}"
            alt = (image.get("alt") or "").strip()
            assert alt, f"{where} has no alt text"
            assert not re.search(r"\.(png|svg|jpe?g|gif)\b|_images/", alt), f"{where}: alt is a file name: {alt!r}"
            if "_images/" in src or image.get("id", "").startswith("_anim_img"):
                figures += 1
                assert len(alt.split()) >= 12, f"{where}: {alt!r} does not say what the figure shows"
    assert figures >= 21  # 17 drawn figures and plots, 4 animations (two players on a page repeat a landmark)


def test_animations_describe_themselves(built_site):
    raw = (built_site / "book" / "03_stride.html").read_text(encoding="utf8")
    collector = ImageCollector()
    collector.feed(raw)
    players = [image["alt"] for image in collector.images if image.get("id", "").startswith("_anim_img")]
    assert players == ["Animation in 4 frames: a 2\u00d72 kernel [[0, 1], [2, 3]] slides over the 3\u00d73 input "
                       "[[0, 1, 2], [3, 4, 5], [6, 7, 8]], padded with zeros (1 row above and below, 1 column left "
                       "and right) to 5\u00d75, with stride (3, 2). Each frame shades the window and shows the output "
                       "element it gives, row by row, until the 2\u00d72 output [[0, 8], [6, 8]] is complete."]
    assert 'aria-label="Animation frame"' in raw


def test_self_check_answers_are_executed_and_hidden(built_site):
    for name in CHAPTERS:
        raw = (built_site / "book" / f"{name}.html").read_text(encoding="utf8")
        section = raw[raw.index('<section id="check-yourself">'):]
        answers = re.findall(r"<details[^>]*>(.*?)</details>", section, re.S)
        assert 3 <= len(answers) <= 5, f"{name}: {len(answers)} answers"
        for number, answer in enumerate(answers, 1):
            assert f"Show the answer to question {number}<" in answer, f"{name}: answer {number} has no toggle"
            assert 'class="cell_output' in answer, f"{name}: answer {number} was not executed"
            assert "aria-label" not in answer.split("</summary>")[0], f"{name}: the toggle hides its text"


def test_pytorch_shape_table(built_site):
    table = json.loads((built_site / "_static" / "pytorch_shapes.json").read_text(encoding="utf8"))
    assert table["torch"].split("+")[0] == version("torch")  # computed by the installed PyTorch
    assert table["columns"] == ["operation", "input", "kernel", "padding", "stride", "dilation", "output-padding",
                                "output", "error"]
    rows = [dict(zip(table["columns"], row)) for row in table["rows"]]
    for operation in ("conv", "max", "avg", "transposed"):
        outcomes = [row for row in rows if row["operation"] == operation]
        assert any(row["output"] for row in outcomes) and any(row["error"] for row in outcomes), operation
        assert any(row["input"][0] != row["input"][1] and row["output"] for row in outcomes), operation
        assert any(row["dilation"][0] > 1 for row in outcomes) == (operation != "avg"), operation
        assert any(row["output-padding"][0] > 0 for row in outcomes) == (operation == "transposed"), operation
    # the explorer's script and styles go only to the pages that use it, from the site itself
    for name in CHAPTERS:
        raw = (built_site / "book" / f"{name}.html").read_text(encoding="utf8")
        uses = name in EXPLORER_PAGES
        assert ('<section class="shape-explorer"' in raw) == uses, name
        assert ('src="../_static/shape_explorer.js' in raw) == uses, name
    assert (built_site / "_static" / "shape_explorer.js").is_file()
    raw = (built_site / "book" / "08_dilation_transposed.html").read_text(encoding="utf8")
    assert 'data-operation="transposed"' in raw and 'data-output-padding="1"' in raw
    assert 'data-dilation="2"' in (built_site / "book" / "03_stride.html").read_text(encoding="utf8")


def test_chapters_end_with_check_yourself():
    """3-5 questions after the summary, each answered by a hidden, executed code cell."""
    from myst_nb.core.read import read_myst_markdown_notebook

    for name, text in sources().items():
        cells = read_myst_markdown_notebook(text).cells
        start = next(i for i, cell in enumerate(cells) if "## Check yourself" in cell.source)
        questions, answers = cells[start::2], cells[start + 1::2]  # the heading shares a cell with question 1
        after = [questions[0].source.split("## Check yourself")[1]] + [q.source for q in questions[1:]]
        assert not any("## " in text for text in after), f"{name}: Check yourself is not the last section"
        assert 3 <= len(questions) == len(answers) <= 5, name
        for number, (question, answer) in enumerate(zip(questions, answers), 1):
            assert question.cell_type == "markdown" and f"**Question {number}.**" in question.source, name
            assert answer.cell_type == "code" and answer.metadata["tags"] == ["hide-cell"], f"{name} {number}"
            prompt = answer.metadata["mystnb"]["code_prompt_show"]
            assert prompt == f"Show the answer to question {number}", f"{name} {number}"
