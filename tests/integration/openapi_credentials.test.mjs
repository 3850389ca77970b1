// The gateway fills an apiKey credential where the document's security scheme says (query,
// header, cookie), from `credentials:` (an owner-only file or an environment variable). A real
// HTTP upstream records what it receives: the key arrives where the scheme says, only on the
// operations whose security names that scheme; the model's tools/list never shows the key's
// parameter; and the key appears in no output at all (the gateway's log, every client answer,
// including an upstream that echoes the key back or quotes it in an error). An http bearer, an
// http basic and an OAuth 2 scheme take their credential in the Authorization header; an OAuth 2
// operation that declares the token as a parameter (Slack's `token`, in the query or a form) never
// shows it to the model, and a call without it is not refused. Refusals at load name the
// credential and the cause (a file open to others, an unknown scheme, a digest scheme, a basic
// value without a colon, an Authorization header configured as well).

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
const BKEY = 'xoxb-bearer-5c0ffee1d2';
const BASIC = 'svc-user:pw-7e3a9b1c';
const OKEY = 'xoxb-oauth-3141592653';
const ENCODED = [QKEY, encodeURIComponent(QKEY), HKEY, CKEY, BKEY, BASIC, Buffer.from(BASIC).toString('base64'), OKEY];
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
      if (u.pathname.endsWith('/basic')) {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        return res.end(JSON.stringify({ got: req.headers.authorization }));
      }
      res.writeHead(u.searchParams.get('fail') === 'true' ? 500 : 200, { 'Content-Type': 'application/json' });
      res.end(u.pathname.endsWith('/echo') ? echo : '{"ok":true}');
    });
  });
  await new Promise((r) => api.listen(0, '127.0.0.1', r));
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'query.key'), `${QKEY}\n`, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'cookie.key'), CKEY, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'bearer.key'), `${BKEY}\n`, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'basic.key'), `${BASIC}\n`, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'oauth.key'), `${OKEY}\n`, { mode: 0o600 });
  process.env.GH_TEST_HEADER_KEY = HKEY;
  const config = baseConfig({
    servers: [
      {
        name: 'keyed',
        spec: SPEC,
        base_url: `http://127.0.0.1:${api.address().port}/v1`,
        discovery: 'static',
        credentials: {
          query_key: { file: 'query.key' },
          header_key: { env: 'GH_TEST_HEADER_KEY' },
          cookie_key: { file: path.join(dir, 'cookie.key') },
          bearer: { file: 'bearer.key' },
          basic: { file: 'basic.key' },
          slack_oauth: { file: 'oauth.key' },
        },
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
  assert.deepEqual(Object.keys(tools).sort(), [
    'by_basic', 'by_bearer', 'by_cookie', 'by_header', 'by_query', 'channel_history', 'echo_request', 'post_message', 'public_info',
  ]);
  assert.deepEqual(Object.keys(tools.by_query.inputSchema.properties ?? {}), ['q']);
  assert.deepEqual(Object.keys(tools.by_header.inputSchema.properties ?? {}), []);
  assert.deepEqual(Object.keys(tools.by_cookie.inputSchema.properties ?? {}), ['pref']);
  assert.deepEqual(Object.keys(tools.channel_history.inputSchema.properties ?? {}), ['channel']);
  assert.deepEqual(tools.channel_history.inputSchema.required, ['channel']);
  assert.deepEqual(Object.keys(tools.post_message.inputSchema.properties ?? {}), ['text']);
  assert.ok(!/api_key|X-Api-Key|session_key|"token"/i.test(r.text), r.text);
});

test('bearer, basic and OAuth 2 credentials go in the Authorization header; a token parameter is filled there', async () => {
  const b = await call('by_bearer');
  assert.notEqual(b.res.isError, true, b.text);
  assert.equal(b.got[0].headers.authorization, `Bearer ${BKEY}`);

  const basic = await call('by_basic');
  assert.notEqual(basic.res.isError, true, basic.text);
  assert.equal(basic.got[0].headers.authorization, `Basic ${Buffer.from(BASIC).toString('base64')}`);
  // the API quoting the header back: the base64 form is redacted too
  assert.match(basic.text, /\[redacted\]/);

  // Slack's shape: the token is a required query parameter / form field of an OAuth 2 operation.
  const h = await call('channel_history', { channel: 'C1' });
  assert.notEqual(h.res.isError, true, h.text);
  assert.equal(h.got[0].line, 'GET /v1/chat.history?channel=C1');
  assert.equal(h.got[0].headers.authorization, `Bearer ${OKEY}`);
  const p = await call('post_message', { text: 'hi' });
  assert.notEqual(p.res.isError, true, p.text);
  assert.equal(p.got[0].headers.authorization, `Bearer ${OKEY}`);
  // the model cannot supply the token itself
  const forged = await call('channel_history', { channel: 'C1', token: 'mine' });
  assert.equal(forged.res.isError, true);
  assert.equal(forged.got.length, 0);

  // an operation that names none of them gets no Authorization header
  const q = await call('by_query', { q: 'z' });
  assert.equal(q.got[0].headers.authorization, undefined);
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
  fs.writeFileSync(path.join(dir, 'nocolon.key'), 'sekrit-value\n', { mode: 0o600 });
  const server = (credentials, headers) => ({ name: 'keyed', spec: SPEC, base_url: 'http://127.0.0.1:9/v1', credentials, ...(headers ? { headers } : {}) });
  for (const [credentials, why, headers] of [
    [{ query_key: { file: 'open.key' } }, /credential query_key of server keyed: .*open\.key is open to others \(mode 0644\); expected a regular file only its owner can read or write \(chmod 600\)/],
    [{ nope: { env: 'HOME' } }, /credential nope of server keyed: the document has no security scheme \\?"nope\\?"; expected the name of one of its apiKey, http bearer or basic, OAuth 2 or OpenID Connect security schemes \(query_key, header_key, cookie_key, bearer, basic, slack_oauth\)/],
    [{ digest: { env: 'HOME' } }, /credential digest of server keyed: the document has a security scheme that takes no credential from the configuration \(http digest, mutualTLS, \.\.\.\): \\?"digest\\?"/],
    [{ basic: { file: 'nocolon.key' } }, /credential basic of server keyed: basic is an http basic scheme; expected the value \\?"user:password\\?" \(it holds no colon\)/],
    [{ bearer: { env: 'HOME' } }, /credential bearer of server keyed: it goes in the Authorization header, which the server's headers set already; keep one of the two/, { Authorization: 'Bearer other' }],
    [{ header_key: { env: 'GH_TEST_UNSET_VARIABLE' } }, /the environment variable GH_TEST_UNSET_VARIABLE is not set/],
  ]) {
    const g = await startGateway(baseConfig({ servers: [server(credentials, headers)] }), { t, dir });
    await until(() => g.lines.some((l) => why.test(l)), { what: `${why}\n${g.lines.slice(-5).join('\n')}` });
    assert.ok(!g.lines.join('\n').includes('sekrit-value'));
    await g.kill();
  }
});
