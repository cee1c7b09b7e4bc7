"""The convolution-arithmetic explorer: a ``shape-explorer`` directive, its script, and PyTorch's table of shapes.

In a chapter::

    ```{shape-explorer}
    :operation: max
    :input: 4
    :kernel: 2
    :padding: 1
    :stride: 2
    ```

places an explorer with those starting values (operation ``conv``, ``max`` or ``avg``). The page gets an empty,
labelled ``<section>``; ``book/_static/shape_explorer.js`` (added only to pages that use the directive, served from
the site's ``_static`` like everything else) builds the controls and drawings in the reader's browser.

After every HTML build, ``_static/pytorch_shapes.json`` records, for a grid of configurations, the output size that
PyTorch itself computes, or the error it raises; tests/test_book_browser.py drives the explorer through a sample of
them and compares what it displays.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive, directives

STATIC = Path(__file__).resolve().parent.parent / "_static"
TABLE = "pytorch_shapes.json"
OPERATIONS = ("conv", "max", "avg")
GRID = {"input": range(1, 13), "kernel": range(1, 7), "padding": range(0, 4), "stride": range(1, 5)}


class shape_explorer(nodes.General, nodes.Element):
    """Where an explorer goes, with its starting values."""


def visit_html(self, node: shape_explorer) -> None:
    data = " ".join(f'data-{key}="{node[key]}"' for key in ("operation", *GRID) if key in node)
    self.body.append(f'<section class="shape-explorer" {data}>'
                     "<p>The shape explorer runs in your browser and needs JavaScript.</p></section>\n")
    raise nodes.SkipNode


def skip(self, node: shape_explorer) -> None:
    raise nodes.SkipNode


class ShapeExplorer(Directive):
    option_spec = {"operation": lambda value: directives.choice(value, OPERATIONS),
                   **{key: directives.nonnegative_int for key in GRID}}

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
    """PyTorch's output height (width alike) for every configuration of the grid, or the error it raises."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    layers = {
        "conv": lambda x, k, p, s: F.conv2d(x, torch.zeros(1, 1, k, k), padding=p, stride=s),
        "max": lambda x, k, p, s: F.max_pool2d(x, k, stride=s, padding=p),
        "avg": lambda x, k, p, s: F.avg_pool2d(x, k, stride=s, padding=p),
    }
    rows = []
    for operation, (n, k, p, s) in itertools.product(OPERATIONS, itertools.product(*GRID.values())):
        row = {"operation": operation, "input": n, "kernel": k, "padding": p, "stride": s}
        try:
            height, width = layers[operation](torch.zeros(1, 1, n, n), k, p, s).shape[-2:]
            rows.append({**row, "output": [height, width], "error": None})
        except RuntimeError as error:
            rows.append({**row, "output": None, "error": str(error).splitlines()[0]})
    return {"torch": torch.__version__, "rows": rows}


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
