/* The convolution-arithmetic explorer of the padding, stride, pooling and dilation chapters.
 *
 * book/_ext/shape_explorer.py places an empty <section class="shape-explorer"> with the starting values in its
 * data attributes ("3", or "3 5" for height and width); this script builds the controls and the drawings in the
 * reader's browser. No kernel, no network, no library: plain DOM and SVG. Every control is a native <select>,
 * <input> or <button>, so it works by keyboard. Along each axis, a convolution or pooling layer gives
 * o = floor((n + 2p - d(k - 1) - 1) / s) + 1 outputs and a transposed convolution
 * o = (n - 1)s - 2p + d(k - 1) + output_padding + 1; the browser test compares them with PyTorch's own table.
 */
(function () {
  "use strict";

  const OPERATIONS = {
    conv: { label: "Cross-correlation (nn.Conv2d)", layer: "nn.Conv2d(1, 1, ", window: "kernel", fill: "0" },
    max: { label: "Max pooling (nn.MaxPool2d)", layer: "nn.MaxPool2d(", window: "window", fill: "\u2212\u221e",
           pool: true },
    avg: { label: "Average pooling (nn.AvgPool2d)", layer: "nn.AvgPool2d(", window: "window", fill: "0",
           pool: true, noDilation: true },
    transposed: { label: "Transposed convolution (nn.ConvTranspose2d)", layer: "nn.ConvTranspose2d(1, 1, ",
                  window: "kernel", fill: "0", transposed: true },
  };
  const FIELDS = [
    { key: "input", label: "Input size n", min: 1, max: 16 },
    { key: "kernel", label: "Kernel size k", min: 1, max: 7, argument: "kernel_size" },
    { key: "padding", label: "Padding p (per side)", min: 0, max: 4, argument: "padding", default: 0 },
    { key: "stride", label: "Stride s", min: 1, max: 5, argument: "stride", default: 1 },
    { key: "dilation", label: "Dilation d", min: 1, max: 4, argument: "dilation", default: 1 },
    { key: "outputPadding", label: "Output padding", min: 0, max: 4, argument: "output_padding", default: 0,
      transposedOnly: true },
  ];
  const AXES = ["height", "width"];
  const AXIS_NAMES = AXES.map((axis) => `${axis[0].toUpperCase()}${axis.slice(1)}`);  // "Height", "Width"
  const SVG = "http://www.w3.org/2000/svg";
  const TIMES = "\u00d7";
  const MINUS = "\u2212";
  const DOT = "\u00b7";
  let instances = 0;

  /* The arithmetic along one axis, with the reasons a configuration has no output. */
  function axisArithmetic(op, { input: n, kernel: k, padding: p, stride: s, dilation: d, outputPadding: q }) {
    const what = OPERATIONS[op].window;
    const effective = d * (k - 1) + 1;
    const problems = [];
    if (OPERATIONS[op].transposed) {
      if (q >= Math.max(s, d)) {
        problems.push(`The output padding must be smaller than the stride or the dilation: ${q} is not smaller ` +
                      `than max(s, d) = ${Math.max(s, d)}. PyTorch raises an error.`);
      }
      const full = (n - 1) * s + effective;
      const out = full - 2 * p + q;
      if (out < 1) {
        problems.push(`The padding crops more than the transposed convolution produces: (n ${MINUS} 1)s + ` +
                      `d(k ${MINUS} 1) + 1 = ${full} cells, ${MINUS} 2p = ${2 * p}, + output padding ${q} leaves ` +
                      `${out}. PyTorch raises an error.`);
      }
      return { problems, out, full, effective, extent: Math.max(full, p + out) };
    }
    if (OPERATIONS[op].noDilation && d !== 1) {
      problems.push("nn.AvgPool2d has no dilation: d must be 1.");
    }
    if (OPERATIONS[op].pool && 2 * p > k) {
      problems.push(`Pooling pads at most half the window on each side: p = ${p} is more than k / 2 = ${k / 2}. ` +
                    "PyTorch raises an error (\u201cpad should be at most half of \u2026 kernel size\u201d).");
    }
    const padded = n + 2 * p;
    if (padded < effective) {
      const span = d > 1 ? ` with dilation ${d} spans d(k ${MINUS} 1) + 1 = ${effective} cells and` : "";
      problems.push(`The ${what} of size ${k}${span} does not fit in the padded input: n + 2p = ${n} + 2${DOT}${p} = ` +
                    `${padded} is smaller than ${effective}, so there is no position for it and no output. ` +
                    "PyTorch raises an error.");
    }
    const span = padded - effective;
    const out = Math.floor(span / s) + 1;
    return { problems, padded, out, span, effective, unused: span - (out - 1) * s };
  }

  function formula(op, v, a) {
    if (OPERATIONS[op].transposed) {
      return `o = (n ${MINUS} 1)s ${MINUS} 2p + d(k ${MINUS} 1) + output padding + 1 = ` +
             `(${v.input} ${MINUS} 1)${DOT}${v.stride} ${MINUS} 2${DOT}${v.padding} + ` +
             `${v.dilation}${DOT}(${v.kernel} ${MINUS} 1) + ${v.outputPadding} + 1 = ${a.out}`;
    }
    const kernelTerm = v.dilation === 1 ? `${MINUS} k` : `${MINUS} d(k ${MINUS} 1) ${MINUS} 1`;
    const kernelValue = v.dilation === 1 ? `${MINUS} ${v.kernel}`
      : `${MINUS} ${v.dilation}${DOT}(${v.kernel} ${MINUS} 1) ${MINUS} 1`;
    return `o = \u230a(n + 2p ${kernelTerm}) / s\u230b + 1 = ` +
           `\u230a(${v.input} + 2${DOT}${v.padding} ${kernelValue}) / ${v.stride}\u230b + 1 = ` +
           `\u230a${a.span} / ${v.stride}\u230b + 1 = ${a.out}`;
  }

  function code(op, h, w) {
    const args = [];
    for (const field of FIELDS) {
      if (!field.argument || (field.transposedOnly && !OPERATIONS[op].transposed)) continue;
      if (field.key === "dilation" && OPERATIONS[op].noDilation) continue;
      const [a, b] = [h[field.key], w[field.key]];
      if (field.default !== undefined && a === field.default && b === field.default) continue;
      args.push(`${field.argument}=${a === b ? a : `(${a}, ${b})`}`);
    }
    return `${OPERATIONS[op].layer}${args.join(", ")})`;
  }

  function element(tag, attributes, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svgElement(tag, attributes) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    return node;
  }

  function plural(count, word) {
    return `${count} ${word}${count === 1 ? "" : "s"}`;
  }

  /* "3" or "3 5" from a data attribute: [height, width]. */
  function startingValues(text, fallback) {
    const parts = String(text || fallback).trim().split(/\s+/);
    return [parts[0], parts[parts.length - 1]];
  }

  function range(from, count, step) {
    const last = from + (count - 1) * step;
    return step > 1 ? `${from} to ${last}, every ${step}` : `${from} to ${last}`;
  }

  function build(root, _, all) {
    const id = `shape-explorer-${++instances}`;
    const start = OPERATIONS[root.dataset.operation] ? root.dataset.operation : "conv";
    root.replaceChildren();
    // several explorers on one page need different names (each is a landmark): name the layer each starts with,
    // and whether it starts dilated (the stride chapter has a plain and a dilated cross-correlation)
    const dilated = (root.dataset.dilation || "1").split(/\s+/).some((value) => Number(value) > 1);
    const layer = `${OPERATIONS[start].label}${dilated ? ", dilated" : ""}`;
    const title = all.length > 1 ? `Explore the output shape: ${layer}` : "Explore the output shape";
    root.append(element("p", { class: "shape-explorer__title", id: `${id}-title` }, title));
    root.setAttribute("aria-labelledby", `${id}-title`);

    const controls = element("fieldset", { class: "shape-explorer__controls" });
    controls.append(element("legend", {}, "Settings"));
    const operation = element("select", { id: `${id}-operation`, name: "operation" });
    for (const [value, { label }] of Object.entries(OPERATIONS)) {
      operation.append(element("option", { value }, label));
    }
    operation.value = start;
    controls.append(wrap(element("label", { for: `${id}-operation` }, "Operation"), operation));

    const starts = Object.fromEntries(FIELDS.map((f) => [f.key, startingValues(root.dataset[f.key], f.min)]));
    const same = element("input", { id: `${id}-same`, name: "same", type: "checkbox" });
    same.checked = FIELDS.every((f) => starts[f.key][0] === starts[f.key][1]);
    const sameField = element("div", { class: "shape-explorer__check" });
    sameField.append(same, element("label", { for: same.id }, "Width as height"));
    controls.append(sameField);

    const table = element("table", { class: "shape-explorer__table" });
    const head = element("tr");
    head.append(element("td"));
    for (const axis of AXES) head.append(element("th", { scope: "col", id: `${id}-${axis}` }, axis));
    table.append(element("thead"), element("tbody"));
    table.tHead.append(head);
    const inputs = {};
    const rows = {};
    for (const field of FIELDS) {
      const row = element("tr");
      row.append(element("th", { scope: "row", id: `${id}-${field.key}` }, field.label));
      inputs[field.key] = {};
      for (const [i, axis] of AXES.entries()) {
        const input = element("input", { id: `${id}-${field.key}-${axis}`, name: `${field.key}-${axis}`,
                                         type: "number", min: field.min, max: field.max, step: 1,
                                         inputmode: "numeric", value: starts[field.key][i],
                                         "aria-labelledby": `${id}-${field.key} ${id}-${axis}` });
        inputs[field.key][axis] = input;
        const cell = element("td");
        cell.append(input);
        row.append(cell);
      }
      rows[field.key] = row;
      table.tBodies[0].append(row);
    }
    controls.append(table);

    const result = element("div", { class: "shape-explorer__result", "aria-live": "polite" });
    const formulas = element("ul", { class: "shape-explorer__formula" });
    const shape = element("p", { class: "shape-explorer__shape" });
    const codeLine = element("p", { class: "shape-explorer__code" });
    const problems = element("ul", { class: "shape-explorer__problems" });
    const unused = element("p", { class: "shape-explorer__unused" });
    result.append(formulas, shape, codeLine, problems, unused);

    const stepper = element("div", { class: "shape-explorer__stepper", role: "group",
                                     "aria-label": "Step the window" });
    const previous = element("button", { type: "button" }, "Previous window");
    const play = element("button", { type: "button", "aria-pressed": "false" }, "Play");
    const next = element("button", { type: "button" }, "Next window");
    const position = element("p", { class: "shape-explorer__position", "aria-live": "polite" });
    stepper.append(previous, play, next);

    const drawings = element("div", { class: "shape-explorer__drawings" });
    const inputFigure = figure();
    const outputFigure = figure();
    drawings.append(inputFigure.node, outputFigure.node);
    const legend = element("p", { class: "shape-explorer__legend" });
    root.append(controls, result, stepper, position, drawings, legend);

    let state = null;
    let step = 0;
    let timer = null;

    function read() {
      const values = { height: {}, width: {} };
      const errors = [];
      const transposed = OPERATIONS[operation.value].transposed;
      for (const field of FIELDS) {
        rows[field.key].hidden = field.transposedOnly && !transposed;
        for (const axis of AXES) {
          const input = inputs[field.key][axis];
          if (axis === "width") {
            input.disabled = same.checked;
            if (same.checked) input.value = inputs[field.key].height.value;
          }
          if (rows[field.key].hidden) {
            values[axis][field.key] = field.default;
            input.removeAttribute("aria-invalid");
            continue;
          }
          const raw = input.value.trim();
          const value = Number(raw);
          if (raw === "" || !Number.isInteger(value) || value < field.min || value > field.max) {
            if (!(axis === "width" && same.checked)) {
              errors.push(`${field.label} (${axis}) must be a whole number from ${field.min} to ${field.max}.`);
            }
            input.setAttribute("aria-invalid", "true");
          } else {
            input.removeAttribute("aria-invalid");
          }
          values[axis][field.key] = value;
        }
      }
      return { values, errors };
    }

    function update() {
      stop();
      const { values, errors } = read();
      const op = operation.value;
      const transposed = OPERATIONS[op].transposed;
      if (errors.length) {
        state = { problems: errors };
      } else {
        const axes = AXES.map((axis) => axisArithmetic(op, values[axis]));
        const square = FIELDS.every((f) => values.height[f.key] === values.width[f.key]);
        const found = square ? axes[0].problems
          : axes.flatMap((a, i) => a.problems.map((text) => `${AXIS_NAMES[i]}: ${text}`));
        state = { problems: found, op, transposed, square, values, axes };
      }
      step = 0;
      problems.replaceChildren(...state.problems.map((text) => element("li", {}, text)));
      const drawable = state.problems.length === 0;
      for (const node of [formulas, codeLine, unused, stepper, position, drawings, legend]) node.hidden = !drawable;
      if (!drawable) {
        shape.textContent = errors.length ? "Output: none (fix the settings)" : "Output: none (impossible)";
        return;
      }
      const [h, w] = state.axes;
      formulas.replaceChildren(...(state.square ? [formula(op, values.height, h)]
        : AXES.map((axis, i) => `${AXIS_NAMES[i]}: ${formula(op, values[axis], state.axes[i])}`))
        .map((text) => element("li", {}, text)));
      shape.textContent = `Output: ${h.out} ${TIMES} ${w.out}`;
      codeLine.replaceChildren("In PyTorch: ", element("code", {}, code(op, values.height, values.width)));
      const lost = transposed ? [0, 0] : [h.unused, w.unused];
      unused.textContent = lost[0] || lost[1]
        ? `The last ${plural(lost[0], "row")} and ${plural(lost[1], "column")} of the padded input fall in no ` +
          "window: the floor in the formula drops them."
        : "";
      unused.hidden = !(lost[0] || lost[1]);
      legend.textContent = transposed
        ? "Shaded: the current input element and the output cells its value times the kernel is added to; blue: " +
          "cells that earlier elements added to. Dashed cells: cropped by the padding (PyTorch drops them)" +
          (h.extent > h.full || w.extent > w.full ? "; dotted: added by the output padding (they hold 0)." : ".")
        : `Dashed cells: padding (they hold ${OPERATIONS[op].fill}). Shaded: the current ${OPERATIONS[op].window}` +
          `${values.height.dilation > 1 || values.width.dilation > 1 ? "'s elements (the outline spans the dilated " +
            OPERATIONS[op].window + ")" : ""} and the output element it gives` +
          (lost[0] || lost[1] ? "; pink with dotted edges: cells no window reaches." : ".");
      previous.textContent = transposed ? "Previous element" : "Previous window";
      next.textContent = transposed ? "Next element" : "Next window";
      stepper.setAttribute("aria-label", transposed ? "Step through the input elements" : "Step the window");
      draw();
    }

    function taps(top, left, v) {
      const cells = [];
      for (let a = 0; a < v.height.kernel; a++) {
        for (let b = 0; b < v.width.kernel; b++) {
          cells.push([top + a * v.height.dilation, left + b * v.width.dilation]);
        }
      }
      return cells;
    }

    /* Step i of a grid perRow wide: its row and column, and where its window starts (s cells apart). */
    function place(i, perRow, v) {
      const row = Math.floor(i / perRow);
      const column = i % perRow;
      return { row, column, top: row * v.height.stride, left: column * v.width.stride };
    }

    /* The rows and the columns the window starting at (top, left) covers, as text. */
    function spans(top, left, v) {
      return [range(top, v.height.kernel, v.height.dilation), range(left, v.width.kernel, v.width.dilation)];
    }

    function draw() {
      if (state.transposed) drawTransposed();
      else drawWindow();
    }

    /* Convolution and pooling: step over the output elements; each reads a window of the padded input. */
    function drawWindow() {
      const { values: v, axes: [h, w], op } = state;
      const { row, column, top, left } = place(step, w.out, v);
      const window = taps(top, left, v);
      const shaded = new Set(window.map(([r, c]) => `${r},${c}`));
      const reach = [(h.out - 1) * v.height.stride + h.effective, (w.out - 1) * v.width.stride + w.effective];
      inputFigure.caption("Padded input");
      inputFigure.render(h.padded, w.padded, (r, c) => {
        const padding = r < v.height.padding || c < v.width.padding || r >= v.height.padding + v.height.input ||
          c >= v.width.padding + v.width.input;
        return { padding, unreached: r >= reach[0] || c >= reach[1], shaded: shaded.has(`${r},${c}`),
                 text: padding ? OPERATIONS[op].fill : "" };
      }, { top, left, height: h.effective, width: w.effective });
      outputFigure.caption("Output");
      outputFigure.render(h.out, w.out, (r, c) => ({ done: r * w.out + c < step, shaded: r === row && c === column }),
                          { top: row, left: column, height: 1, width: 1 });
      const [rows, columns] = spans(top, left, v);
      inputFigure.describe(`Padded input, ${h.padded} ${TIMES} ${w.padded}: the ${v.height.input} ${TIMES} ` +
                           `${v.width.input} input with ${plural(v.height.padding, "row")} of padding above and ` +
                           `below and ${plural(v.width.padding, "column")} left and right. The ` +
                           `${v.height.kernel} ${TIMES} ${v.width.kernel} ${OPERATIONS[op].window} covers rows ` +
                           `${rows} and columns ${columns}.`);
      outputFigure.describe(`Output, ${h.out} ${TIMES} ${w.out}; the current ${OPERATIONS[op].window} gives ` +
                            `element (${row}, ${column}).`);
      position.textContent = `Window ${step + 1} of ${count()}: output element (${row}, ${column}) reads ` +
                             `padded-input rows ${rows}, columns ${columns}.`;
    }

    /* Transposed convolution: step over the input elements; each adds its value times the kernel to the output,
       placed s apart; the padding then crops p cells from each side and the output padding adds cells at the end. */
    function drawTransposed() {
      const { values: v, axes: [h, w] } = state;
      const { row, column, top, left } = place(step, v.width.input, v);
      const written = new Set(taps(top, left, v).map(([r, c]) => `${r},${c}`));
      const before = new Set();
      for (let i = 0; i < step; i++) {
        const { top: r0, left: c0 } = place(i, v.width.input, v);
        for (const [r, c] of taps(r0, c0, v)) before.add(`${r},${c}`);
      }
      const kept = (r, axis, a) => r >= v[axis].padding && r < v[axis].padding + a.out;
      inputFigure.caption("Input");
      inputFigure.render(v.height.input, v.width.input,
                         (r, c) => ({ done: r * v.width.input + c < step, shaded: r === row && c === column }),
                         { top: row, left: column, height: 1, width: 1 });
      outputFigure.caption("Output before cropping");
      outputFigure.render(h.extent, w.extent, (r, c) => ({
        padding: !kept(r, "height", h) || !kept(c, "width", w),
        extra: r >= h.full || c >= w.full,
        shaded: written.has(`${r},${c}`),
        done: before.has(`${r},${c}`),
      }), { top, left, height: h.effective, width: w.effective });
      const [rows, columns] = spans(top, left, v);
      inputFigure.describe(`Input, ${v.height.input} ${TIMES} ${v.width.input}; the current element is ` +
                           `(${row}, ${column}).`);
      outputFigure.describe(`Output before cropping, ${h.extent} ${TIMES} ${w.extent}: the element's value times ` +
                            `the ${v.height.kernel} ${TIMES} ${v.width.kernel} kernel is added to rows ${rows} and ` +
                            `columns ${columns}. Cropping ${plural(v.height.padding, "row")} at the top and ` +
                            `${plural(v.width.padding, "column")} at the left leaves the ${h.out} ${TIMES} ` +
                            `${w.out} output.`);
      position.textContent = `Element ${step + 1} of ${count()}: input element ` +
                             `(${row}, ${column}) adds its value times the kernel to rows ${rows}, columns ` +
                             `${columns} before cropping.`;
    }

    function count() {
      return state.transposed ? state.values.height.input * state.values.width.input
        : state.axes[0].out * state.axes[1].out;
    }

    function move(delta) {
      if (!state || state.problems.length) return;
      step = (step + delta + count()) % count();
      draw();
    }

    function stop() {
      if (timer) clearInterval(timer);
      timer = null;
      play.textContent = "Play";
      play.setAttribute("aria-pressed", "false");
    }

    operation.addEventListener("change", update);
    same.addEventListener("change", update);
    for (const pair of Object.values(inputs)) {
      for (const input of Object.values(pair)) input.addEventListener("input", update);
    }
    previous.addEventListener("click", () => { stop(); move(-1); });
    next.addEventListener("click", () => { stop(); move(1); });
    play.addEventListener("click", () => {
      if (timer) { stop(); return; }
      play.textContent = "Pause";
      play.setAttribute("aria-pressed", "true");
      timer = setInterval(() => move(1), 800);
    });
    update();
  }

  function wrap(label, control) {
    const field = element("div", { class: "shape-explorer__field" });
    field.append(label, control);
    return field;
  }

  /* One grid drawn as SVG: a caption, cells, and an outlined rectangle of cells. */
  function figure() {
    const node = element("figure", { class: "shape-explorer__figure" });
    const svg = svgElement("svg", { role: "img" });
    const title = element("figcaption");
    node.append(svg, title);
    return {
      node,
      caption(text) { title.textContent = text; },
      describe(text) { svg.setAttribute("aria-label", text); },
      render(rows, columns, cell, outline) {
        const unit = Math.max(10, Math.min(32, Math.floor(320 / Math.max(rows, columns))));
        const [width, height] = [columns * unit + 4, rows * unit + 4];
        svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
        svg.setAttribute("width", width);
        svg.setAttribute("height", height);
        svg.replaceChildren();
        for (let r = 0; r < rows; r++) {
          for (let c = 0; c < columns; c++) {
            const look = cell(r, c);
            const classes = ["cell"];
            for (const flag of ["padding", "unreached", "extra", "done", "shaded"]) {
              if (look[flag]) classes.push(`cell--${flag}`);
            }
            svg.append(svgElement("rect", { x: 2 + c * unit, y: 2 + r * unit, width: unit, height: unit,
                                            class: classes.join(" ") }));
            if (look.text && unit >= 20) {
              const text = svgElement("text", { x: 2 + (c + 0.5) * unit, y: 2 + (r + 0.5) * unit,
                                                class: "cell__text" });
              text.textContent = look.text;
              svg.append(text);
            }
          }
        }
        svg.append(svgElement("rect", { x: 2 + outline.left * unit, y: 2 + outline.top * unit,
                                        width: outline.width * unit, height: outline.height * unit,
                                        class: "window" }));
      },
    };
  }

  function start() {
    document.querySelectorAll("section.shape-explorer").forEach(build);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
