/* The convolution-arithmetic explorer of the padding, stride and pooling chapters.
 *
 * book/_ext/shape_explorer.py places an empty <section class="shape-explorer"> with the starting values in its
 * data attributes; this script builds the controls and the drawings in the reader's browser. No kernel, no network,
 * no library: plain DOM and SVG. Every control is a native <select>, <input> or <button>, so it works by keyboard.
 * The shapes follow o = floor((n + 2p - k) / s) + 1; the browser test compares them with PyTorch's own table.
 */
(function () {
  "use strict";

  const OPERATIONS = {
    conv: { label: "Cross-correlation (nn.Conv2d)", window: "kernel", fill: "0",
            code: (k, p, s) => `nn.Conv2d(1, 1, kernel_size=${k}, padding=${p}, stride=${s})` },
    max: { label: "Max pooling (nn.MaxPool2d)", window: "window", fill: "\u2212\u221e",
           code: (k, p, s) => `nn.MaxPool2d(${k}, stride=${s}, padding=${p})` },
    avg: { label: "Average pooling (nn.AvgPool2d)", window: "window", fill: "0",
           code: (k, p, s) => `nn.AvgPool2d(${k}, stride=${s}, padding=${p})` },
  };
  const FIELDS = [
    { key: "input", label: "Input size n", min: 1, max: 16 },
    { key: "kernel", label: "Kernel size k", min: 1, max: 7 },
    { key: "padding", label: "Padding p (per side)", min: 0, max: 4 },
    { key: "stride", label: "Stride s", min: 1, max: 5 },
  ];
  const SVG = "http://www.w3.org/2000/svg";
  const TIMES = "\u00d7";
  const MINUS = "\u2212";
  let instances = 0;

  /* The arithmetic, with the reasons a configuration has no output. */
  function arithmetic(operation, n, k, p, s) {
    const padded = n + 2 * p;
    const what = OPERATIONS[operation].window;
    const problems = [];
    if (padded < k) {
      problems.push(`The ${k} ${TIMES} ${k} ${what} does not fit in the padded input: n + 2p = ${n} + 2\u00b7${p} = ` +
                    `${padded} is smaller than k = ${k}, so there is no position for it and no output. ` +
                    "PyTorch raises an error.");
    }
    if (operation !== "conv" && 2 * p > k) {
      problems.push(`Pooling pads at most half the window on each side: p = ${p} is more than k / 2 = ${k / 2}. ` +
                    "PyTorch raises an error (\u201cpad should be at most half of effective kernel size\u201d).");
    }
    if (problems.length) return { problems };
    const span = padded - k;
    const out = Math.floor(span / s) + 1;
    return { problems, padded, out, span, unused: span - (out - 1) * s };
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

  function build(root) {
    const id = `shape-explorer-${++instances}`;
    root.replaceChildren();
    root.append(element("p", { class: "shape-explorer__title", id: `${id}-title` },
                        "Explore the output shape"));
    root.setAttribute("aria-labelledby", `${id}-title`);

    const controls = element("fieldset", { class: "shape-explorer__controls" });
    controls.append(element("legend", {}, "Settings (height and width alike)"));
    const operationLabel = element("label", { for: `${id}-operation` }, "Operation");
    const operation = element("select", { id: `${id}-operation`, name: "operation" });
    for (const [value, { label }] of Object.entries(OPERATIONS)) {
      operation.append(element("option", { value }, label));
    }
    operation.value = OPERATIONS[root.dataset.operation] ? root.dataset.operation : "conv";
    controls.append(wrap(operationLabel, operation));
    const inputs = {};
    for (const field of FIELDS) {
      const input = element("input", { id: `${id}-${field.key}`, name: field.key, type: "number", min: field.min,
                                       max: field.max, step: 1, inputmode: "numeric",
                                       value: root.dataset[field.key] || field.min });
      inputs[field.key] = input;
      controls.append(wrap(element("label", { for: input.id }, field.label), input));
    }

    const result = element("div", { class: "shape-explorer__result", "aria-live": "polite" });
    const formula = element("p", { class: "shape-explorer__formula" });
    const shape = element("p", { class: "shape-explorer__shape" });
    const code = element("p", { class: "shape-explorer__code" });
    const problems = element("ul", { class: "shape-explorer__problems" });
    const unused = element("p", { class: "shape-explorer__unused" });
    result.append(formula, shape, code, problems, unused);

    const stepper = element("div", { class: "shape-explorer__stepper", role: "group",
                                     "aria-label": "Step the window" });
    const previous = element("button", { type: "button" }, "Previous window");
    const play = element("button", { type: "button", "aria-pressed": "false" }, "Play");
    const next = element("button", { type: "button" }, "Next window");
    const position = element("p", { class: "shape-explorer__position", "aria-live": "polite" });
    stepper.append(previous, play, next);

    const drawings = element("div", { class: "shape-explorer__drawings" });
    const inputFigure = figure("Padded input");
    const outputFigure = figure("Output");
    drawings.append(inputFigure.node, outputFigure.node);
    const legend = element("p", { class: "shape-explorer__legend" });
    root.append(controls, result, stepper, position, drawings, legend);

    let state = null;
    let step = 0;
    let timer = null;

    function read() {
      const values = {};
      const errors = [];
      for (const field of FIELDS) {
        const raw = inputs[field.key].value.trim();
        const value = Number(raw);
        if (raw === "" || !Number.isInteger(value) || value < field.min || value > field.max) {
          errors.push(`${field.label} must be a whole number from ${field.min} to ${field.max}.`);
          inputs[field.key].setAttribute("aria-invalid", "true");
        } else {
          inputs[field.key].removeAttribute("aria-invalid");
        }
        values[field.key] = value;
      }
      return { values, errors };
    }

    function update() {
      stop();
      const { values, errors } = read();
      const { input: n, kernel: k, padding: p, stride: s } = values;
      const op = operation.value;
      state = errors.length ? { problems: errors } : { ...arithmetic(op, n, k, p, s), n, k, p, s, op };
      step = 0;
      problems.replaceChildren(...state.problems.map((text) => element("li", {}, text)));
      const drawable = state.problems.length === 0;
      for (const node of [formula, code, unused, stepper, position, drawings, legend]) node.hidden = !drawable;
      if (!drawable) {
        shape.textContent = errors.length ? "Output: none (fix the settings)" : "Output: none (impossible)";
        return;
      }
      formula.textContent = `o = \u230a(n + 2p ${MINUS} k) / s\u230b + 1 = ` +
                            `\u230a(${n} + 2\u00b7${p} ${MINUS} ${k}) / ${s}\u230b + 1 = ` +
                            `\u230a${state.span} / ${s}\u230b + 1 = ${state.out}`;
      shape.textContent = `Output: ${state.out} ${TIMES} ${state.out}`;
      code.replaceChildren("In PyTorch: ", element("code", {}, OPERATIONS[op].code(k, p, s)));
      unused.textContent = state.unused > 0
        ? `The last ${plural(state.unused, "row")} and ${plural(state.unused, "column")} of the padded input fall ` +
          "in no window: the floor in the formula drops them."
        : "";
      unused.hidden = state.unused === 0;
      legend.textContent = `Dashed cells: padding (they hold ${OPERATIONS[op].fill}). Shaded: the current ` +
                           `${OPERATIONS[op].window} and the output element it gives` +
                           (state.unused > 0 ? "; pink with dotted edges: cells no window reaches." : ".");
      draw();
    }

    function draw() {
      const { n, k, p, s, out, padded } = state;
      const row = Math.floor(step / out);
      const column = step % out;
      const top = row * s;
      const left = column * s;
      inputFigure.render(padded, (r, c) => {
        const padding = r < p || c < p || r >= p + n || c >= p + n;
        const reached = r < (out - 1) * s + k && c < (out - 1) * s + k;
        return { padding, unreached: !reached, text: padding ? OPERATIONS[state.op].fill : "" };
      }, { top, left, size: k });
      outputFigure.render(out, (r, c) => ({ done: r * out + c < step }), { top: row, left: column, size: 1 });
      inputFigure.describe(`Padded input, ${padded} ${TIMES} ${padded}: the ${n} ${TIMES} ${n} input with ` +
                           `${plural(p, "cell")} of padding on each side. The ${k} ${TIMES} ${k} ` +
                           `${OPERATIONS[state.op].window} covers rows ${top} to ${top + k - 1} and columns ` +
                           `${left} to ${left + k - 1}.`);
      outputFigure.describe(`Output, ${out} ${TIMES} ${out}; the current window gives element ` +
                            `(${row}, ${column}).`);
      position.textContent = `Window ${step + 1} of ${out * out}: output element (${row}, ${column}) reads ` +
                             `padded-input rows ${top}\u2013${top + k - 1}, columns ${left}\u2013${left + k - 1}.`;
    }

    function move(delta) {
      if (!state || state.problems.length) return;
      const count = state.out * state.out;
      step = (step + delta + count) % count;
      draw();
    }

    function stop() {
      if (timer) clearInterval(timer);
      timer = null;
      play.textContent = "Play";
      play.setAttribute("aria-pressed", "false");
    }

    operation.addEventListener("change", update);
    for (const input of Object.values(inputs)) input.addEventListener("input", update);
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

  /* One grid drawn as SVG: a caption, cells, and a highlighted square of cells. */
  function figure(caption) {
    const node = element("figure", { class: "shape-explorer__figure" });
    const svg = svgElement("svg", { role: "img" });
    const title = element("figcaption", {}, caption);
    node.append(svg, title);
    return {
      node,
      describe(text) { svg.setAttribute("aria-label", text); },
      render(size, cell, highlight) {
        const unit = Math.max(12, Math.min(32, Math.floor(320 / size)));
        const extent = size * unit + 4;
        svg.setAttribute("viewBox", `0 0 ${extent} ${extent}`);
        svg.setAttribute("width", extent);
        svg.setAttribute("height", extent);
        svg.replaceChildren();
        for (let r = 0; r < size; r++) {
          for (let c = 0; c < size; c++) {
            const look = cell(r, c);
            const classes = ["cell"];
            if (look.padding) classes.push("cell--padding");
            if (look.unreached) classes.push("cell--unreached");
            if (look.done) classes.push("cell--done");
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
        svg.append(svgElement("rect", { x: 2 + highlight.left * unit, y: 2 + highlight.top * unit,
                                        width: highlight.size * unit, height: highlight.size * unit,
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
