#!/usr/bin/env node
// What a model reads of an API's JSON answers, before and after Gatehouse's response projection
// (issue 5, "Responses"), in bytes and in o200k tokens.
//
//   node bench/openapi_responses.mjs [--sample N] [--markdown]
//
// The responses are GitHub's own: the 2xx `application/json` examples of `GET` operations in
// `@octokit/openapi`'s description (recorded from the API for GitHub's documentation). Their
// lists hold one or two items, where a real page holds 30 (GitHub's default per_page): a list
// example is therefore also measured as a page of 30 made of its items repeated, each with
// the same shape. N operations (default 40) are sampled deterministically: every k-th of the
// GET operations with a JSON example that have a tool, in path order. "Before" is the compact JSON a tool result
// carried before projection (the transport's 16 KiB cap aside); "after" is the text of
// `gatehouse openapi inspect SPEC --project "GET /path"`: the projected JSON plus its note line.
//
// Needs bench/node (scripts/deps.sh bench, or cd bench/node && npm ci). GATEHOUSE_BIN overrides
// build/gatehouse.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.resolve(REPO, process.env.GATEHOUSE_BIN ?? 'build/gatehouse');
const harness = createRequire(path.join(REPO, 'bench/node/package.json'));
const args = process.argv.slice(2);
const markdown = args.includes('--markdown');
const si = args.indexOf('--sample');
const SAMPLE = si >= 0 ? Number(args[si + 1]) : 40;
const PAGE = 30;

let spec, encode;
try {
  spec = harness.resolve('@octokit/openapi/generated/api.github.com.json');
  const dir = path.dirname(harness.resolve('gpt-tokenizer/package.json'));
  ({ encode } = await import(pathToFileURL(path.join(dir, 'esm/encoding/o200k_base.js')).href));
} catch (e) {
  console.error(`bench/node is not installed (scripts/deps.sh bench, or cd bench/node && npm ci): ${e.message}`);
  process.exit(2);
}

const doc = JSON.parse(fs.readFileSync(spec, 'utf8'));
const deref = (o) => {
  for (let i = 0; o && o.$ref && i < 8; i++) o = o.$ref.slice(2).split('/').reduce((x, k) => x?.[k.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
  return o;
};
// operations the default heuristics drop have no tool
const dropped = new Set(JSON.parse(execFileSync(BIN, ['openapi', 'inspect', spec, '--json'], { encoding: 'utf8', maxBuffer: 1 << 30 })).dropped.map((d) => d.operation));
const candidates = [];
for (const p of Object.keys(doc.paths).sort()) {
  const op = doc.paths[p].get;
  if (!op || dropped.has(`GET ${p}`)) continue;
  const code = Object.keys(op.responses ?? {}).filter((c) => /^2/.test(c)).sort()[0];
  const media = deref(op.responses[code])?.content?.['application/json'];
  const ex = media?.examples ? deref(Object.values(media.examples)[0])?.value : media?.example;
  if (ex !== undefined && ex !== null && typeof ex === 'object') candidates.push({ path: p, ex });
}
const step = Math.max(1, Math.floor(candidates.length / SAMPLE));
const sample = candidates.filter((_, i) => i % step === 0).slice(0, SAMPLE);

const page = (v) => (Array.isArray(v) && v.length > 0 ? Array.from({ length: PAGE }, (_, i) => v[i % v.length]) : v);
const measureOne = (tool, body) => {
  const before = JSON.stringify(body);
  const after = execFileSync(BIN, ['openapi', 'inspect', spec, '--project', tool], { input: before, encoding: 'utf8', maxBuffer: 1 << 28 }).trimEnd();
  return { bb: Buffer.byteLength(before), ab: Buffer.byteLength(after), bt: encode(before).length, at: encode(after).length, after };
};

const rows = [];
for (const c of sample) {
  const tool = `GET ${c.path}`;
  const one = measureOne(tool, c.ex);
  const list = Array.isArray(c.ex) ? measureOne(tool, page(c.ex)) : null;
  rows.push({ path: c.path, one, list });
}

const sum = (xs, f) => xs.reduce((a, x) => a + f(x), 0);
const pct = (a, b) => `${(100 * (1 - a / b)).toFixed(1)}%`;
const lists = rows.filter((r) => r.list);
const report = [
  ['examples as recorded', rows.length, sum(rows, (r) => r.one.bb), sum(rows, (r) => r.one.ab), sum(rows, (r) => r.one.bt), sum(rows, (r) => r.one.at)],
  [`list examples as pages of ${PAGE}`, lists.length, sum(lists, (r) => r.list.bb), sum(lists, (r) => r.list.ab), sum(lists, (r) => r.list.bt), sum(lists, (r) => r.list.at)],
];
const big = rows.map((r) => r.list ?? r.one).sort((a, b) => b.bt - a.bt)[0];
const bigRow = rows.find((r) => (r.list ?? r.one) === big);
if (markdown) {
  console.log('| responses | count | bytes before → after | o200k tokens before → after | tokens saved |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const [name, n, bb, ab, bt, at] of report) console.log(`| ${name} | ${n} | ${bb.toLocaleString('en')} → ${ab.toLocaleString('en')} | ${bt.toLocaleString('en')} → ${at.toLocaleString('en')} | ${pct(at, bt)} |`);
  console.log(`\nLargest: GET ${bigRow.path}${bigRow.list ? ` (page of ${PAGE})` : ''}: ${big.bt.toLocaleString('en')} → ${big.at.toLocaleString('en')} tokens, ${big.bb.toLocaleString('en')} → ${big.ab.toLocaleString('en')} bytes.`);
} else {
  console.log(`GitHub (${path.basename(spec)}): ${candidates.length} GET operations with a JSON example, ${rows.length} sampled (every ${step}th)`);
  for (const [name, n, bb, ab, bt, at] of report) console.log(`  ${name.padEnd(28)} ${n} responses: ${bb} -> ${ab} bytes, ${bt} -> ${at} tokens (${pct(at, bt)} fewer)`);
  console.log(`  largest  GET ${bigRow.path}: ${big.bt} -> ${big.at} tokens`);
}
