"""The convolution-arithmetic explorer: a ``shape-explorer`` directive, its script, and PyTorch's table of shapes.

In a chapter::

    ```{shape-explorer}
    :operation: max
    :input: 4
    :kernel: 2
    :padding: 1
    :stride: 2
    ```

places an explorer with those starting values (operation ``conv``, ``max``, ``avg`` or ``transposed``; each
setting one number for height and width alike, or two, ``:kernel: 3 5``; also ``:dilation:`` and
``:output-padding:``). The page gets an empty, labelled ``<section>``; ``book/_static/shape_explorer.js`` (added
only to pages that use the directive, served from the site's ``_static`` like everything else) builds the controls
and drawings in the reader's browser.

After every HTML build, ``_static/pytorch_shapes.json`` records, for a grid of configurations, the output height
and width that PyTorch itself computes, or the error it raises; tests/test_book_browser.py drives the explorer
through a sample of them and compares what it displays.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive, directives

STATIC = Path(__file__).resolve().parent.parent / "_static"
TABLE = "pytorch_shapes.json"
OPERATIONS = ("conv", "max", "avg", "transposed")
SETTINGS = ("input", "kernel", "padding", "stride", "dilation", "output-padding")
# the configurations of one axis in the table, per operation: average pooling has no dilation, and only a
# transposed convolution has an output padding
AXIS_GRID = {"input": range(1, 9), "kernel": range(1, 5), "padding": range(0, 3), "stride": range(1, 4),
             "dilation": range(1, 4), "output-padding": range(0, 1)}
GRIDS = {"conv": AXIS_GRID, "max": AXIS_GRID, "avg": {**AXIS_GRID, "dilation": range(1, 2)},
         "transposed": {**AXIS_GRID, "input": range(1, 6), "output-padding": range(0, 3)}}


def one_or_two_numbers(value: str) -> str:
    """A setting for height and width alike ("3"), or for each ("3 5")."""
    numbers = [directives.nonnegative_int(part) for part in (value or "").split()]
    if len(numbers) not in (1, 2):
        raise ValueError("give one number, or two (height width)")
    return " ".join(map(str, numbers))


class shape_explorer(nodes.General, nodes.Element):
    """Where an explorer goes, with its starting values."""


def visit_html(self, node: shape_explorer) -> None:
    data = " ".join(f'data-{key}="{node[key]}"' for key in ("operation", *SETTINGS) if key in node)
    self.body.append(f'<section class="shape-explorer" {data}>'
                     "<p>The shape explorer runs in your browser and needs JavaScript.</p></section>\n")
    raise nodes.SkipNode


def skip(self, node: shape_explorer) -> None:
    raise nodes.SkipNode


class ShapeExplorer(Directive):
    option_spec = {"operation": lambda value: directives.choice(value, OPERATIONS),
                   **{key: one_or_two_numbers for key in SETTINGS}}

    def run(self):
        node = shape_explorer()
        for key, value in self.options.items():
            node[key] = value
        return [node]


def add_assets(app, pagename, templatename, context, doctree) -> None:
    if doctree is not None and next(doctree.findall(shape_explorer), None) is not None:
        app.add_js_file("shape_explorer.js", defer="defer")
        app.add_css_file("shape_explorer.css")


def pytorch_shapes() -> dict:
    """PyTorch's output height and width, or the error it raises, for a grid of configurations per operation.

    Each row pairs one configuration of the grid, for the height, with another, for the width (a fixed shuffle of
    the same grid), so that the two axes differ. Rows are lists in the order of ``columns``: the operation, then
    (height, width) pairs of each setting, the output (height, width) or None, and the error or None."""
    import random

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    layers = {
        "conv": lambda x, k, p, s, d, q: F.conv2d(x, torch.zeros(1, 1, *k), padding=p, stride=s, dilation=d),
        "max": lambda x, k, p, s, d, q: F.max_pool2d(x, k, stride=s, padding=p, dilation=d),
        "avg": lambda x, k, p, s, d, q: F.avg_pool2d(x, k, stride=s, padding=p),
        "transposed": lambda x, k, p, s, d, q: F.conv_transpose2d(x, torch.zeros(1, 1, *k), stride=s, padding=p,
                                                                  dilation=d, output_padding=q),
    }
    rows = []
    for operation in OPERATIONS:
        heights = list(itertools.product(*GRIDS[operation].values()))
        widths = random.Random(operation).sample(heights, len(heights))
        for height, width in zip(heights, widths):
            settings = list(zip(height, width))
            (n, k, p, s, d, q) = settings
            try:
                out = list(layers[operation](torch.zeros(1, 1, *n), k, p, s, d, q).shape[-2:])
                rows.append([operation, *settings, out, None])
            except RuntimeError as error:
                rows.append([operation, *settings, None, str(error).splitlines()[0]])
    return {"torch": torch.__version__, "columns": ["operation", *SETTINGS, "output", "error"], "rows": rows}


def write_table(app, exception) -> None:
    if exception is None and app.builder.format == "html":
        path = Path(app.outdir) / "_static" / TABLE
        path.write_text(json.dumps(pytorch_shapes(), separators=(",", ":")), encoding="utf8")


def serve_static(app, config) -> None:
    config.html_static_path.append(str(STATIC))


def setup(app):
    app.add_node(shape_explorer, html=(visit_html, None), latex=(skip, None), text=(skip, None),
                 man=(skip, None), texinfo=(skip, None))
    app.add_directive("shape-explorer", ShapeExplorer)
    app.connect("config-inited", serve_static)
    app.connect("html-page-context", add_assets)
    app.connect("build-finished", write_table)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
