"""Figures for the book, drawn by code at build time (in the spirit of the convolution-arithmetic animations).

One drawing function, :func:`draw`, shows an input grid (with its padding), the kernel (for a cross-correlation)
and the output grid, and shades the window (dilated or not) that produces chosen output elements. :func:`animate`
steps that window across the input, one frame per output element, and returns a self-contained HTML animation
(all frames embedded, no external script or stylesheet) whose frame carries, as its alt text, a description of the
whole animation computed from the same tensors (:func:`describe_animation`). :func:`draw_transposed` shows a
transposed convolution as the sum of its input elements' scaled kernels. The numbers in the output grids come from
PyTorch itself (``F.conv2d``, ``F.max_pool2d``, ``F.avg_pool2d``, ``F.conv_transpose2d``), so a figure can never
disagree with the library.
"""
from __future__ import annotations

import io
import re
from html import escape
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from matplotlib.animation import FuncAnimation
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

__all__ = ["BookFigure", "draw", "animate", "describe_animation", "draw_transposed", "show_images"]

COLORS = ["#8ecae6", "#ffb703", "#b7e4c7", "#f4a6a6"]  # one per highlighted output element
PAD_FILL = "#eeeeee"
SYMBOL = {"corr": "\u22c6", "max": "max", "avg": "avg"}  # ⋆ is the cross-correlation operator


class BookFigure(Figure):
    """A matplotlib Figure that shows itself as a PNG when it is a cell's result (no pyplot needed)."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _fmt(v: float) -> str:
    if v == float("-inf"):
        return "\u2212\u221e"  # −∞
    return f"{v:g}" if float(v).is_integer() else f"{v:.2f}".rstrip("0")


def _output(X: torch.Tensor, K: torch.Tensor | None, mode: str, window, padding, stride,
            dilation=(1, 1)) -> torch.Tensor:
    x = X[None, None].float()
    if mode == "corr":
        return F.conv2d(x, K[None, None].float(), padding=padding, stride=stride, dilation=dilation)[0, 0]
    if mode == "max":
        return F.max_pool2d(x, window, stride=stride, padding=padding, dilation=dilation)[0, 0]
    assert tuple(dilation) == (1, 1), "average pooling has no dilation"
    return F.avg_pool2d(x, window, stride=stride, padding=padding)[0, 0]


def _grid(ax, values: torch.Tensor, title: str, fills: dict, padded: int | tuple = (0, 0),
          hidden: Iterable = ()) -> dict:
    """Draw ``values`` as a grid of numbered cells; ``fills`` maps (row, col) to a colour. Returns each cell's
    (rectangle, text, plain colour), for callers that recolour cells or hide values later."""
    ph, pw = _pair(padded)
    h, w = values.shape
    hidden = set(hidden)
    cells = {}
    for r in range(h):
        for c in range(w):
            is_pad = r < ph or r >= h - ph or c < pw or c >= w - pw
            plain = PAD_FILL if is_pad else "white"
            box = ax.add_patch(Rectangle((c, r), 1, 1, facecolor=fills.get((r, c), plain), edgecolor="#555555",
                                         linestyle="--" if is_pad else "-", linewidth=1))
            text = ax.text(c + 0.5, r + 0.5, _fmt(float(values[r, c])), ha="center", va="center", fontsize=11,
                           color="#777777" if is_pad else "black", visible=(r, c) not in hidden)
            cells[(r, c)] = (box, text, plain)
    ax.set_xlim(-0.05, w + 0.05)
    ax.set_ylim(h + 0.05, -0.05)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=11)
    return cells


class _Scene:
    """Input, kernel and output grids drawn once; :meth:`show` shades windows and reveals output values, so that
    an animation changes colours and texts from frame to frame instead of drawing every frame anew."""

    def __init__(self, X: torch.Tensor, K: torch.Tensor | None, fig: Figure, *, mode: str = "corr", window=2,
                 padding=0, stride=1, dilation=1):
        ph, pw = _pair(padding)
        self.mode, self.K, self.stride, self.dilation = mode, K, _pair(stride), _pair(dilation)
        self.kernel = K.shape if mode == "corr" else _pair(window)
        fill = {"corr": 0.0, "avg": 0.0, "max": float("-inf")}[mode]  # what the padding cells hold
        self.Xp = torch.full((X.shape[0] + 2 * ph, X.shape[1] + 2 * pw), fill)
        self.Xp[ph:ph + X.shape[0], pw:pw + X.shape[1]] = X
        self.Y = _output(X, K, mode, self.kernel, (ph, pw), self.stride, self.dilation)
        widths = [self.Xp.shape[1]] + ([self.kernel[1]] if mode == "corr" else []) + [self.Y.shape[1]]
        axes = fig.subplots(1, len(widths), gridspec_kw={"width_ratios": widths, "wspace": 0.35})
        pad_note = f", padding={padding}" if (ph or pw) else ""
        stride_note = f", stride={stride}" if self.stride != (1, 1) else ""
        stride_note += f", dilation={dilation}" if self.dilation != (1, 1) else ""
        self.inputs = _grid(axes[0], self.Xp, f"Input {tuple(X.shape)}{pad_note}", {}, padded=(ph, pw))
        if mode == "corr":
            _grid(axes[1], K, f"Kernel {tuple(K.shape)}", {})
        kh, kw = self.kernel
        title = "Output" if mode == "corr" else f"{mode} pool {kh}\u00d7{kw}"
        self.outputs = _grid(axes[-1], self.Y, f"{title} {tuple(self.Y.shape)}{stride_note}", {})
        self.caption = fig.suptitle("", fontsize=11, y=0.08)

    def show(self, highlight: Sequence[tuple[int, int]], reveal: int | None = None) -> None:
        """Shade the window of every output element in ``highlight`` (and the element), write out the sum each
        computes, and show only the first ``reveal`` output values (row-major; all of them if None)."""
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.stride, self.dilation
        fills, sums = {}, []
        for n, (i, j) in enumerate(highlight):
            color = COLORS[n % len(COLORS)]
            window = [(i * sh + a * dh, j * sw + b * dw) for a in range(kh) for b in range(kw)]
            fills.update({("in", cell): color for cell in window})
            fills[("out", (i, j))] = color
            terms = [_fmt(float(self.Xp[cell])) for cell in window]
            if self.mode == "corr":
                kvals = [_fmt(float(self.K[a, b])) for a in range(kh) for b in range(kw)]
                expr = "+".join(f"{t}\u00d7{k}" for t, k in zip(terms, kvals))
            else:
                expr = f"{self.mode}({', '.join(terms)})"
            sums.append(f"{expr} = {_fmt(float(self.Y[i, j]))}")
        for side, cells in (("in", self.inputs), ("out", self.outputs)):
            for cell, (box, _, plain) in cells.items():
                box.set_facecolor(fills.get((side, cell), plain))
        width = self.Y.shape[1]
        for (r, c), (_, text, _) in self.outputs.items():
            text.set_visible(reveal is None or r * width + c < reveal)
        self.caption.set_text("    ".join(sums))


def draw(X: torch.Tensor, K: torch.Tensor | None = None, *, mode: str = "corr", window=2, padding=0, stride=1,
         dilation=1, highlight: Sequence[tuple[int, int]] = ((0, 0),), reveal: int | None = None) -> Figure:
    """Draw input, kernel and output; shade the window of every output element in ``highlight``.

    mode: ``"corr"`` (cross-correlation with kernel ``K``), ``"max"`` or ``"avg"`` (pooling with ``window``).
    padding, stride and dilation are per side / per step / between kernel elements, as in ``nn.Conv2d`` and
    ``nn.MaxPool2d`` (int or (h, w)). reveal: show only the first ``reveal`` output values (row-major), as the
    animation does.
    """
    fig = BookFigure(figsize=(8, 3.2), dpi=90)
    scene = _Scene(X, K, fig, mode=mode, window=window, padding=padding, stride=stride, dilation=dilation)
    scene.show(highlight, reveal)
    return fig


def animate(X: torch.Tensor, K: torch.Tensor | None = None, *, interval_ms: int = 900, **kwargs) -> str:
    """Step the window over every output position; return an offline HTML player (frames embedded)."""
    fig = Figure(figsize=(8, 3.2), dpi=72)
    scene = _Scene(X, K, fig, **kwargs)
    positions = [(i, j) for i in range(scene.Y.shape[0]) for j in range(scene.Y.shape[1])]
    player = FuncAnimation(fig, lambda n: scene.show([positions[n]], reveal=n + 1), frames=len(positions),
                           interval=interval_ms)
    return _labelled(_offline(player.to_jshtml(default_mode="loop")), describe_animation(X, K, **kwargs))


def describe_animation(X: torch.Tensor, K: torch.Tensor | None = None, *, mode: str = "corr", window=2, padding=0,
                       stride=1, dilation=1) -> str:
    """What the animation of these arguments shows, in words and numbers (its alt text)."""
    ph, pw = _pair(padding)
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    kh, kw = K.shape if mode == "corr" else _pair(window)
    Y = _output(X, K, mode, (kh, kw), (ph, pw), (sh, sw), (dh, dw))
    if mode == "corr":
        what = f"a {kh}\u00d7{kw} kernel {_matrix(K)}"
    else:
        what = f"a {kh}\u00d7{kw} {'maximum' if mode == 'max' else 'average'}-pooling window"
    where = f"the {X.shape[0]}\u00d7{X.shape[1]} input {_matrix(X)}"
    if ph or pw:
        fill = "\u2212\u221e" if mode == "max" else "zeros"
        where += (f", padded with {fill} ({ph} row{'s' * (ph != 1)} above and below, {pw} column{'s' * (pw != 1)} "
                  f"left and right) to {X.shape[0] + 2 * ph}\u00d7{X.shape[1] + 2 * pw}")
    step = f", with stride ({sh}, {sw})" if (sh, sw) != (1, 1) else ", one cell at a time"
    if (dh, dw) != (1, 1):
        what += f" dilated by ({dh}, {dw}), its elements {dh} rows and {dw} columns apart,"
    return (f"Animation in {Y.numel()} frames: {what} slides over {where}{step}. Each frame shades the window and "
            f"shows the output element it gives, row by row, until the {Y.shape[0]}\u00d7{Y.shape[1]} output "
            f"{_matrix(Y)} is complete.")


def draw_transposed(X: torch.Tensor, K: torch.Tensor, *, stride=1, padding=0) -> Figure:
    """A transposed convolution as a sum: one grid per input element, holding that element times the kernel at
    its place in the output (``stride`` apart), then their sum; ``padding`` cells per side, dashed in the sum, are
    the ones PyTorch crops (``F.conv_transpose2d``)."""
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    kh, kw = K.shape
    x, k = X[None, None].float(), K[None, None].float()
    full = F.conv_transpose2d(x, k, stride=(sh, sw))[0, 0]
    Y = F.conv_transpose2d(x, k, stride=(sh, sw), padding=(ph, pw))[0, 0]
    assert torch.equal(full[ph:full.shape[0] - ph, pw:full.shape[1] - pw], Y)
    fig = BookFigure(figsize=(2.0 * (X.numel() + 1), 2.6), dpi=90)
    axes = fig.subplots(1, X.numel() + 1, gridspec_kw={"wspace": 0.3})
    for ax, (i, j) in zip(axes, [(i, j) for i in range(X.shape[0]) for j in range(X.shape[1])]):
        part = torch.zeros_like(full)
        part[i * sh:i * sh + kh, j * sw:j * sw + kw] = X[i, j] * K
        cells = {(i * sh + a, j * sw + b) for a in range(kh) for b in range(kw)}
        _grid(ax, part, f"{_fmt(float(X[i, j]))} \u00d7 kernel at ({i * sh}, {j * sw})",
              {cell: COLORS[(i * X.shape[1] + j) % len(COLORS)] for cell in cells},
              hidden=[(r, c) for r in range(full.shape[0]) for c in range(full.shape[1]) if (r, c) not in cells])
    crop = f"\nwithout padding={padding}" if (ph or pw) else ""
    _grid(axes[-1], full, f"sum{crop}", {}, padded=(ph, pw))
    fig.suptitle(f"input {_matrix(X)}, kernel {_matrix(K)}, stride {stride}: output {_matrix(Y)}", fontsize=11,
                 y=0.06)
    return fig


def _matrix(values: torch.Tensor) -> str:
    return "[" + ", ".join("[" + ", ".join(_fmt(float(v)) for v in row) + "]" for row in values) + "]"


# matplotlib's player links Font Awesome from a CDN for its button icons: drop the link and use plain glyphs,
# so the book requests nothing from the internet.
_ICONS = {"minus": "\u2212", "fast-backward": "\u21e4", "step-backward": "|\u25c0", "play fa-flip-horizontal": "\u25c0",
          "pause": "\u275a\u275a", "play": "\u25b6", "step-forward": "\u25b6|", "fast-forward": "\u21e5", "plus": "+"}


def _offline(html: str) -> str:
    html = re.sub(r"<link[^>]*font-awesome[^>]*>", "", html)
    html = re.sub(r'<i class="fa fa-([a-z\- ]+)"></i>', lambda m: _ICONS[m.group(1)], html)
    assert "http" not in html.replace("http://www.w3.org", ""), "the animation must not load anything external"
    return html


def _labelled(html: str, alt: str) -> str:
    """Give the player's frame its text description and its frame slider a name (matplotlib's have neither)."""
    for tag, attribute in (("<img id=\"_anim_img", f'alt="{escape(alt)}"'),
                           ("<input id=\"_anim_slider", 'aria-label="Animation frame"')):
        assert html.count(tag) == 1, f"matplotlib's player changed: {tag!r} not found once"
        html = html.replace(tag, tag.replace(" id=", f" {attribute} id="))
    return html


def show_images(images: Sequence[torch.Tensor], titles: Sequence[str], cmap: str = "gray", *,
                symmetric: bool = False, ncols: int | None = None, colorbar: bool = True) -> Figure:
    """2-D tensors shown as images (feature maps, kernels, weight matrices), each with its title, in rows of
    ``ncols`` (one row by default). ``symmetric``: each image's colour scale is centred on 0, so that with a
    diverging ``cmap`` (``"RdBu_r"``) zero is white and the sign of a value is its colour."""
    ncols = ncols or len(images)
    nrows = -(-len(images) // ncols)
    size = 2.6 if colorbar else 1.9
    fig = BookFigure(figsize=(size * ncols, size * nrows), dpi=90)
    axes = fig.subplots(nrows, ncols, squeeze=False).flatten()
    for ax, img, title in zip(axes, images, titles):
        img = img.detach().float()
        limit = float(img.abs().max()) or 1.0
        im = ax.imshow(img, cmap=cmap, **({"vmin": -limit, "vmax": limit} if symmetric else {}))
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        if colorbar:
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    for ax in axes[len(images):]:
        ax.axis("off")
    fig.tight_layout()
    return fig
