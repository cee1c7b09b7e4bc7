"""Accessibility fixes for what the theme and MyST-NB write on every page (checked with axe-core in the tests).

Each fix is made here, not by editing installed packages, and names the upstream problem:

- MyST-NB 1.4 (``myst_nb.sphinx_.visit_HideCellInput``) gives every "Show code cell source" toggle the
  ``aria-label`` "Toggle hidden content", which hides its visible text from speech-input and screen-reader
  users (WCAG 2.5.3 Label in Name, axe ``label-content-name-mismatch``). The toggle is written again without it,
  so its name is the text it shows ("Show code cell source" / "Hide code cell source", or a cell's own prompt).
- pydata-sphinx-theme 0.17 (the family of sphinx-book-theme) labels the search field button "Search" although
  it shows "Search Ctrl+K", labels the colour-mode button "Color mode" although its icon's name says "Light",
  and sphinx-book-theme 1.3 puts the logo link outside every landmark (axe ``region``). The templates in
  ``book/_templates`` override those three components; see the comment in each.
"""
from __future__ import annotations

from html import escape
from pathlib import Path

from myst_nb.sphinx_ import HideCodeCellNode

TEMPLATES = Path(__file__).resolve().parent.parent / "_templates"


def visit_hidden_cell(self, node: HideCodeCellNode) -> None:
    self.body.append(f'<details class="admonition hide {" ".join(node["classes"])}">\n<summary>\n')
    self.body.append(f'<p class="collapsed admonition-title">{escape(node["prompt_show"])}</p>\n')
    self.body.append(f'<p class="expanded admonition-title">{escape(node["prompt_hide"])}</p>\n</summary>\n')


def depart_hidden_cell(self, node: HideCodeCellNode) -> None:
    self.body.append("</details>\n")


def use_book_templates(app, config) -> None:
    """Put book/_templates first, before the theme's components, so its overrides win."""
    config.templates_path.insert(0, str(TEMPLATES))


def setup(app):
    app.setup_extension("myst_nb")
    app.add_node(HideCodeCellNode, override=True, html=(visit_hidden_cell, depart_hidden_cell))
    app.connect("config-inited", use_book_templates)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
