#!/usr/bin/env node
// Recall of the search discovery mode and what it costs in real tokens (o200k_base of
// gpt-tokenizer): runs build/search_recall on the fixed task sets (bench/search_tasks: the tuning
// set and the held-out set, heldout.json), which prints recall@1 and recall@5 per API and per
// set, and counts the start cost of the search mode (its
// tools/list, each tool as the compact JSON a client receives, summed, as
// bench/openapi_tokens.mjs does) and the text of every search_operations answer.
//
//   node bench/search_tokens.mjs [--markdown]
//
// Needs bench/node (scripts/deps.sh bench, or cd bench/node && npm ci). SEARCH_RECALL_BIN
// overrides build/search_recall.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.resolve(REPO, process.env.SEARCH_RECALL_BIN ?? 'build/search_recall');
const harness = createRequire(path.join(REPO, 'bench/node/package.json'));
const markdown = process.argv.includes('--markdown');

let encode;
try {
  const dir = path.dirname(harness.resolve('gpt-tokenizer/package.json'));
  ({ encode } = await import(pathToFileURL(path.join(dir, 'esm/encoding/o200k_base.js')).href));
} catch (e) {
  console.error(`gpt-tokenizer is not installed (scripts/deps.sh bench, or cd bench/node && npm ci): ${e.message}`);
  process.exit(2);
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'search-tokens-'));
const answers = path.join(tmp, 'answers.jsonl');
let recall;
try {
  recall = execFileSync(BIN, ['--answers', answers], { cwd: REPO, encoding: 'utf8' });
} catch (e) {
  console.error(`search_recall failed: ${e.stderr ?? e.message}`);
  process.exit(1);
}
const rows = new Map();
for (const line of fs.readFileSync(answers, 'utf8').split('\n').filter(Boolean)) {
  const { api, kind, text } = JSON.parse(line);
  if (!rows.has(api)) rows.set(api, { start: 0, answers: [] });
  const r = rows.get(api);
  if (kind === 'start') r.start = JSON.parse(text).reduce((n, t) => n + encode(JSON.stringify(t)).length, 0);
  else r.answers.push(encode(text).length);
}
fs.rmSync(tmp, { recursive: true, force: true });

const avg = (a) => (a.length ? Math.round(a.reduce((x, y) => x + y, 0) / a.length) : 0);
const max = (a) => a.reduce((x, y) => Math.max(x, y), 0);
if (markdown) {
  console.log('| API | tools | tasks | recall@1 | recall@2 | recall@5 | search start (o200k) | answer avg / max (o200k) |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
}
// search_recall prints the tuning set's APIs, its total, then the held-out set's APIs and total
const sets = [];
let current = { apis: [] };
for (const line of recall.split('\n')) {
  const m = line.match(/^(.*?)\s+(\d+) tools\s+(\d+) tasks\s+recall@1\s+([\d.]+)%\s+recall@5\s+([\d.]+)%/);
  const t = line.match(/^all \((.*?)\)\s+(\d+) tasks\s+recall@1\s+([\d.]+)%\s+recall@5\s+([\d.]+)%/);
  const r2 = line.match(/recall@2\s+([\d.]+)%/)?.[1];
  if (m) current.apis.push({ api: m[1].trim(), tools: +m[2], tasks: +m[3], r1: m[4], r2, r5: m[5] });
  else if (t) {
    sets.push({ ...current, label: t[1], tasks: t[2], r1: t[3], r2, r5: t[4] });
    current = { apis: [] };
  }
}
for (const set of sets) {
  const answers = set.apis.flatMap((c) => rows.get(c.api)?.answers ?? []);
  const starts = set.apis.map((c) => rows.get(c.api)?.start ?? 0);
  for (const c of set.apis) {
    const r = rows.get(c.api) ?? { start: 0, answers: [] };
    if (markdown) console.log(`| ${c.api} | ${c.tools} | ${c.tasks} | ${c.r1}% | ${c.r2}% | ${c.r5}% | ${r.start} | ${avg(r.answers)} / ${max(r.answers)} |`);
    else console.log(`${c.api.padEnd(32)} recall@1 ${c.r1}%  recall@2 ${c.r2}%  recall@5 ${c.r5}%  start ${r.start} tokens  answer avg ${avg(r.answers)} max ${max(r.answers)} tokens`);
  }
  const label = `all (${set.label})`;
  if (markdown) console.log(`| **${label}** | | ${set.tasks} | ${set.r1}% | ${set.r2}% | ${set.r5}% | ≤ ${max(starts)} | ${avg(answers)} / ${max(answers)} |`);
  else console.log(`${label.padEnd(32)} recall@1 ${set.r1}%  recall@2 ${set.r2}%  recall@5 ${set.r5}%  start ≤ ${max(starts)} tokens  answer avg ${avg(answers)} max ${max(answers)} tokens`);
}
