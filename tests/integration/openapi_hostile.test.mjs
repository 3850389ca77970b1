// Hostile tool arguments through the gateway to a real REST upstream (tests/openapi/hostile.json:
// one operation per parameter style). The upstream is a small Node HTTP server that records the
// raw request target and raw headers it received; for each value the test asserts either the
// exact request line the upstream got (the value stayed inside its one place) or a refusal that
// names the argument with nothing sent. Covers path (simple, label, matrix), query (form,
// spaceDelimited, pipeDelimited, deepObject), header and cookie, with "..", ".", "%2e%2e",
// "../x", "a/b", "?x=1", "#frag", ";x", CR/LF, NUL, very long and non-ASCII values, and arrays
// and objects holding them; and a path key with literal dot segments, which must reach the
// upstream as written (libcurl must not remove dot segments).

import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO, baseConfig, openSession, startGateway } from './lib.mjs';

const SPEC = path.join(REPO, 'tests/openapi/hostile.json');
let api;
let gw;
let s;
const seen = [];

before(async () => {
  api = http.createServer({ maxHeaderSize: 1 << 20 }, (req, res) => {
    req.resume();
    req.on('end', () => {
      seen.push({ line: `${req.method} ${req.url}`, raw: req.rawHeaders });
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  await new Promise((r) => api.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${api.address().port}/base`;
  gw = await startGateway(baseConfig({ servers: [{ name: 'api', spec: SPEC, base_url: base, discovery: 'static' }] }));
  s = await openSession(`${gw.base}/mcp/api`);
});

after(async () => {
  try {
    if (gw) await gw.stop();
  } finally {
    if (gw?.alive) await gw.kill();
    api?.close();
  }
});

/** Calls the tool; returns the one request the upstream got, or the refusal text. */
async function call(tool, args) {
  const before = seen.length;
  const r = await s.callTool(tool, args, { timeout: 15000 });
  const res = r.json?.result;
  assert.ok(res, `${tool}: ${r.text.slice(0, 300)}`);
  const text = (res.content ?? []).map((c) => c.text ?? '').join('');
  if (res.isError) {
    assert.equal(seen.length, before, `${tool} ${JSON.stringify(args)}: refused, yet a request was sent: ${seen.at(-1)?.line}`);
    return { refused: text };
  }
  assert.equal(seen.length, before + 1, `${tool}: one request (${text.slice(0, 200)})`);
  return seen[before];
}

function header(got, name) {
  const out = [];
  for (let i = 0; i < got.raw.length; i += 2) if (got.raw[i].toLowerCase() === name.toLowerCase()) out.push(got.raw[i + 1]);
  return out;
}

const LONG = 'a/.'.repeat(4000);
const LONG_ENC = 'a%2F.'.repeat(4000);

// [tool, args, the exact request line sent] — or a refusal: [tool, args, null, message part]
const SENT = [
  ['delete_invoice', { id: '%2e%2e' }, 'DELETE /base/v1/invoices/%252e%252e'],
  ['delete_invoice', { id: '...' }, 'DELETE /base/v1/invoices/...'],
  ['delete_invoice', { id: '../x' }, 'DELETE /base/v1/invoices/..%2Fx'],
  ['delete_invoice', { id: 'a/b' }, 'DELETE /base/v1/invoices/a%2Fb'],
  ['delete_invoice', { id: '?x=1' }, 'DELETE /base/v1/invoices/%3Fx%3D1'],
  ['delete_invoice', { id: '#frag' }, 'DELETE /base/v1/invoices/%23frag'],
  ['delete_invoice', { id: ';x' }, 'DELETE /base/v1/invoices/%3Bx'],
  ['delete_invoice', { id: 'a\r\nb' }, 'DELETE /base/v1/invoices/a%0D%0Ab'],
  ['delete_invoice', { id: 'a\u0000b' }, 'DELETE /base/v1/invoices/a%00b'],
  ['delete_invoice', { id: 'é中' }, 'DELETE /base/v1/invoices/%C3%A9%E4%B8%AD'],
  ['delete_invoice', { id: LONG }, `DELETE /base/v1/invoices/${LONG_ENC}`],
  ['delete_invoice', { id: ['..', 'a/b', '#'] }, 'DELETE /base/v1/invoices/..,a%2Fb,%23'],
  ['delete_invoice', { id: { '..': '?x=1' } }, 'DELETE /base/v1/invoices/..,%3Fx%3D1'],
  ['get_pair', { a: '.', b: 'x' }, 'GET /base/v1/pair/.x/end'],
  ['get_file', { name: '.' }, 'GET /base/v1/files/..json'],
  ['get_label', { l: 'a/b?c#d' }, 'GET /base/v1/label/.a%2Fb%3Fc%23d'],
  ['get_label', { l: ['..', ';x'] }, 'GET /base/v1/label/...,%3Bx'],
  ['get_label_exploded', { l: ['.', '/'] }, 'GET /base/v1/labelx/...%2F'],
  ['get_matrix', { m: '..' }, 'GET /base/v1/matrix/;m=..'],
  ['get_matrix', { m: 'a;b=c/d' }, 'GET /base/v1/matrix/;m=a%3Bb%3Dc%2Fd'],
  ['get_matrix_exploded', { m: ['.', 'a\nb', '\u0000'] }, 'GET /base/v1/matrixx/;m=.;m=a%0Ab;m=%00'],
  ['search', { f: ['..', 'a&b=c', '#frag'] }, 'GET /base/v1/search?f=..&f=a%26b%3Dc&f=%23frag'],
  ['search', { f: '?x=1/../' }, 'GET /base/v1/search?f=%3Fx%3D1%2F..%2F'],
  ['search', { fc: ['a,b', '\u0000', 'é'] }, 'GET /base/v1/search?fc=a%2Cb,%00,%C3%A9'],
  ['search', { s: ['a b', ';x'] }, 'GET /base/v1/search?s=a%20b%20%3Bx'],
  ['search', { pd: ['a|b', '\r\n'] }, 'GET /base/v1/search?pd=a%7Cb|%0D%0A'],
  ['search', { d: { 'a]b': 'x', k: ['/', '#'] } }, 'GET /base/v1/search?d[a%5Db]=x&d[k][0]=%2F&d[k][1]=%23'],
  ['search', { f: { 'a=b': '&', '..': '/' } }, 'GET /base/v1/search?a%3Db=%26&..=%2F'],
  ['get_header', { 'X-Tag': '../x?y#z;\té' }, 'GET /base/v1/header'],
  ['get_cookie', { pref: 'a; evil=1' }, 'GET /base/v1/cookie'],
  ['get_cookie', { pref: '\r\nX: y\u0000' }, 'GET /base/v1/cookie'],
  ['get_cookie', { pref: ['..', ';'] }, 'GET /base/v1/cookie'],
  // a dot segment written in the document's own path key goes as written
  ['get_literal_dots', { id: 'x' }, 'GET /base/v1/dots/./a/../x'],
];

const REFUSED = [
  ['delete_invoice', { id: '..' }, "path argument 'id' would make the path segment '..'"],
  ['delete_invoice', { id: '.' }, "path argument 'id' would make the path segment '.'"],
  ['delete_invoice', { id: ['..'] }, "path argument 'id' would make the path segment '..'"],
  ['delete_invoice', { id: '' }, "path argument 'id' must not be empty"],
  ['delete_invoice', { id: [] }, "path argument 'id' must not be empty"],
  ['delete_invoice', { id: {} }, "path argument 'id' must not be empty"],
  ['delete_invoice', { id: [''] }, "path argument 'id' must not be empty"],
  ['get_pair', { a: '.', b: '.' }, "path argument 'a' would make the path segment '..'"],
  ['get_label', { l: '.' }, "path argument 'l' would make the path segment '..'"],
  ['get_label', { l: '' }, "path argument 'l' would make the path segment '.'"],
  ['get_literal_dots', { id: '..' }, "path argument 'id' would make the path segment '..'"],
  ['get_header', { 'X-Tag': 'a\r\nX-Evil: 1' }, "header argument 'X-Tag' contains a line break"],
  ['get_header', { 'X-Tag': 'a\u0000b' }, "header argument 'X-Tag' contains the control character 0x00"],
  ['get_header', { 'X-Tag': ['a', '\u001b'] }, "header argument 'X-Tag' contains the control character 0x1b"],
  ['get_header', { 'X-Tag': { k: '\n' } }, "header argument 'X-Tag' contains a line break"],
];

describe('hostile tool arguments reach the upstream only inside their own place', () => {
  test('each value is sent encoded into its one place, exactly', async () => {
    for (const [tool, args, line] of SENT) {
      const got = await call(tool, args);
      assert.equal(got.refused, undefined, `${tool} ${JSON.stringify(args).slice(0, 100)} refused: ${got.refused}`);
      assert.equal(got.line, line, `${tool} ${JSON.stringify(args).slice(0, 100)}`);
    }
  });

  test('header and cookie values cannot add a header or a cookie', async () => {
    const h = await call('get_header', { 'X-Tag': '../x?y#z;\té' });
    assert.deepEqual(header(h, 'X-Tag').map((v) => Buffer.from(v, 'latin1').toString('utf8')), ['../x?y#z;\té']);
    assert.deepEqual(header(h, 'X-Evil'), []);
    const c1 = await call('get_cookie', { pref: 'a; evil=1' });
    assert.deepEqual(header(c1, 'Cookie'), ['pref=a%3B%20evil%3D1']);
    const c2 = await call('get_cookie', { pref: '\r\nX: y\u0000' });
    assert.deepEqual(header(c2, 'Cookie'), ['pref=%0D%0AX%3A%20y%00']);
    assert.deepEqual(header(c2, 'X'), []);
  });

  test('a value that would change the path or a header is refused, naming the argument, and nothing is sent', async () => {
    for (const [tool, args, msg] of REFUSED) {
      const got = await call(tool, args);
      assert.ok(got.refused !== undefined, `${tool} ${JSON.stringify(args)} was sent: ${got.line}`);
      assert.ok(got.refused.includes(msg), `${tool} ${JSON.stringify(args)}: "${got.refused}" does not name "${msg}"`);
    }
  });
});
