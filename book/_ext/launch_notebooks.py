"""Launch buttons open the chapter as a notebook (``book/02_padding.ipynb``), not its MyST source (``.md``).

sphinx-book-theme builds the Binder and Colab URLs from the page's source file; Colab cannot open Markdown and
Binder would show it as text. The publishing workflow (``.github/workflows/book.yml``) pushes every executed
chapter notebook, the same file as the page's download button gives, with the Binder environment in
``binder/``, to the branch named by ``repository: branch`` in ``_config.yml`` (see ``tools/publish_notebooks.py``);
the theme already puts that branch in the URLs, and this extension swaps the ``.md`` for ``.ipynb``.
"""
from __future__ import annotations

from pathlib import Path


def open_notebooks(app, pagename, templatename, context, doctree) -> None:
    source = Path(app.env.doc2path(pagename))
    if source.suffix != ".md":
        return
    markdown = f"{pagename}.md"
    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        for button in group["buttons"]:
            if button.get("type") == "link" and button["url"].endswith(markdown):
                button["url"] = button["url"][: -len(".md")] + ".ipynb"


def setup(app):
    # after sphinx-book-theme's add_launch_buttons (priority 501), before the page is rendered
    app.connect("html-page-context", open_notebooks, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
