// The gateway fills an apiKey credential where the document's security scheme says (query,
// header, cookie), from `credentials:` (an owner-only file or an environment variable). A real
// HTTP upstream records what it receives: the key arrives where the scheme says, only on the
// operations whose security names that scheme; the model's tools/list never shows the key's
// parameter; and the key appears in no output at all (the gateway's log, every client answer,
// including an upstream that echoes the key back or quotes it in an error). Refusals at load
// name the credential and the cause (a file open to others, an unknown scheme).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { REPO, baseConfig, openSession, startGateway, tempDir, until } from './lib.mjs';

const SPEC = path.join(REPO, 'tests/openapi/apikey.yaml');
// Keys with characters that need encoding in a query, so both forms are searched for.
const QKEY = 'qk-9f3a+b/c=d&e';
const HKEY = 'hk-7d21c0ffee5e';
const CKEY = 'ck-51e55ed0a1b2';
const ENCODED = [QKEY, encodeURIComponent(QKEY), HKEY, CKEY];
let api;
let gw;
let s;
const seen = [];
const answers = []; // every text a client got

before(async () => {
  api = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      seen.push({ line: `${req.method} ${req.url}`, headers: req.headers });
      const u = new URL(req.url, 'http://x');
      const echo = JSON.stringify({ url: req.url, headers: req.headers });
      res.writeHead(u.searchParams.get('fail') === 'true' ? 500 : 200, { 'Content-Type': 'application/json' });
      res.end(u.pathname.endsWith('/echo') ? echo : '{"ok":true}');
    });
  });
  await new Promise((r) => api.listen(0, '127.0.0.1', r));
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'query.key'), `${QKEY}\n`, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'cookie.key'), CKEY, { mode: 0o600 });
  process.env.GH_TEST_HEADER_KEY = HKEY;
  const config = baseConfig({
    servers: [
      {
        name: 'keyed',
        spec: SPEC,
        base_url: `http://127.0.0.1:${api.address().port}/v1`,
        discovery: 'static',
        credentials: { query_key: { file: 'query.key' }, header_key: { env: 'GH_TEST_HEADER_KEY' }, cookie_key: { file: path.join(dir, 'cookie.key') } },
      },
    ],
    log: { level: 'debug' },
  });
  gw = await startGateway(config, { dir });
  s = await openSession(`${gw.base}/mcp/keyed`);
});

after(async () => {
  delete process.env.GH_TEST_HEADER_KEY;
  try {
    if (gw) await gw.stop();
  } finally {
    if (gw?.alive) await gw.kill();
    api?.close();
  }
});

async function call(tool, args = {}) {
  const before = seen.length;
  const r = await s.callTool(tool, args, { timeout: 15000 });
  answers.push(r.text);
  const res = r.json?.result;
  assert.ok(res, `${tool}: ${r.text.slice(0, 300)}`);
  return { res, text: (res.content ?? []).map((c) => c.text ?? '').join(''), got: seen.slice(before) };
}

test('tools/list never shows the key parameters', async () => {
  const r = await s.rpc('tools/list', {});
  answers.push(r.text);
  const tools = Object.fromEntries(r.json.result.tools.map((t) => [t.name, t]));
  assert.deepEqual(Object.keys(tools).sort(), ['by_cookie', 'by_header', 'by_query', 'echo_request', 'public_info']);
  assert.deepEqual(Object.keys(tools.by_query.inputSchema.properties ?? {}), ['q']);
  assert.deepEqual(Object.keys(tools.by_header.inputSchema.properties ?? {}), []);
  assert.deepEqual(Object.keys(tools.by_cookie.inputSchema.properties ?? {}), ['pref']);
  assert.ok(!/api_key|X-Api-Key|session_key/i.test(r.text), r.text);
});

test('the upstream gets each key where its scheme says, and only where the operation asks', async () => {
  const q = await call('by_query', { q: 'x y' });
  assert.notEqual(q.res.isError, true, q.text);
  assert.equal(q.got.length, 1);
  assert.equal(q.got[0].line, `GET /v1/q?q=x%20y&api_key=${encodeURIComponent(QKEY)}`);
  assert.equal(new URL(q.got[0].line.slice(4), 'http://x').searchParams.get('api_key'), QKEY);
  assert.equal(q.got[0].headers['x-api-key'], undefined);

  const h = await call('by_header');
  assert.notEqual(h.res.isError, true, h.text);
  assert.equal(h.got[0].line, 'GET /v1/h');
  assert.equal(h.got[0].headers['x-api-key'], HKEY);
  assert.equal(h.got[0].headers.cookie, undefined);

  const c = await call('by_cookie', { pref: 'dark' });
  assert.notEqual(c.res.isError, true, c.text);
  const cookies = c.got[0].headers.cookie.split(/;\s*/).sort();
  assert.deepEqual(cookies, ['pref=dark', `session_key=${CKEY}`]);
  assert.equal(c.got[0].headers['x-api-key'], undefined);

  const o = await call('public_info');
  assert.equal(o.got[0].line, 'GET /v1/open');
  assert.equal(o.got[0].headers['x-api-key'], undefined);
  assert.equal(o.got[0].headers.cookie, undefined);

  // The model cannot pass the hidden parameter either.
  const forged = await call('by_query', { api_key: 'mine' });
  assert.equal(forged.res.isError, true);
  assert.equal(forged.got.length, 0);
});

test('a key the API sends back is scrubbed from the result and the error', async () => {
  const ok = await call('echo_request');
  assert.notEqual(ok.res.isError, true, ok.text);
  assert.ok(ok.got[0].line.includes(encodeURIComponent(QKEY)), 'the upstream got it');
  assert.match(ok.text, /\[redacted\]/);
  const bad = await call('echo_request', { fail: true });
  assert.equal(bad.res.isError, true);
  assert.match(bad.text, /HTTP 500/);
  assert.match(bad.text, /\[redacted\]/);
});

test('no output holds a key: the gateway log and every client answer', async () => {
  await gw.stop();
  const log = gw.lines.join('\n') + gw.stdout;
  assert.ok(log.length > 0);
  for (const k of ENCODED) {
    assert.ok(!log.includes(k), `the log holds ${k}`);
    for (const a of answers) assert.ok(!a.includes(k), `an answer holds ${k}: ${a.slice(0, 300)}`);
  }
});

test('refusals at load name the credential and the cause', async (t) => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'open.key'), 'sekrit-value\n', { mode: 0o644 });
  fs.chmodSync(path.join(dir, 'open.key'), 0o644);
  const server = (credentials) => ({ name: 'keyed', spec: SPEC, base_url: 'http://127.0.0.1:9/v1', credentials });
  for (const [credentials, why] of [
    [{ query_key: { file: 'open.key' } }, /credential query_key of server keyed: .*open\.key is open to others \(mode 0644\); expected a regular file only its owner can read or write \(chmod 600\)/],
    [{ nope: { env: 'HOME' } }, /credential nope of server keyed: the document has no security scheme \\?"nope\\?"; expected the name of one of its apiKey security schemes \(query_key, header_key, cookie_key\)/],
    [{ bearer: { env: 'HOME' } }, /credential bearer of server keyed: the document has a security scheme that is not apiKey: \\?"bearer\\?"/],
    [{ header_key: { env: 'GH_TEST_UNSET_VARIABLE' } }, /the environment variable GH_TEST_UNSET_VARIABLE is not set/],
  ]) {
    const g = await startGateway(baseConfig({ servers: [server(credentials)] }), { t, dir });
    await until(() => g.lines.some((l) => why.test(l)), { what: `${why}\n${g.lines.slice(-5).join('\n')}` });
    assert.ok(!g.lines.join('\n').includes('sekrit-value'));
    await g.kill();
  }
});
