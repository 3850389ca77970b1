// Client-facing protocol errors: malformed JSON-RPC, HTTP header rules, sessions,
// DNS-rebinding protection, routing, and JSON-RPC level errors. Each refusal is checked for
// its HTTP status, JSON-RPC code and a message naming the cause, then the gateway must
// still serve a normal request.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { assertRpcError, assertServing, baseConfig, miniServer, openSession, post, request, startGateway, JSON_HEADERS, PROTOCOL } from './lib.mjs';

let gw;
let s; // a valid session on /mcp

before(async () => {
  gw = await startGateway(baseConfig({ servers: [miniServer('a', { extra: 'only_a' }), miniServer('b')] }));
  s = await openSession(gw.url);
});
after(async () => {
  if (!gw) return;
  try {
    await gw.stop();
  } finally {
    if (gw.alive) await gw.kill();
  }
});

const PING = '{"jsonrpc":"2.0","id":1,"method":"ping"}';

describe('malformed JSON-RPC bodies', () => {
  const cases = [
    { name: 'malformed JSON', body: '{"jsonrpc":', code: -32700, message: /not valid JSON/i },
    { name: 'batch (JSON array)', body: `[${PING}]`, code: -32600, message: /batch/i },
    { name: 'empty array', body: '[]', code: -32600, message: /batch/i },
    { name: 'no jsonrpc member', body: '{"id":1,"method":"ping"}', code: -32600, message: /jsonrpc/ },
    { name: 'jsonrpc "1.0"', body: '{"jsonrpc":"1.0","id":1,"method":"ping"}', code: -32600, message: /jsonrpc.*2\.0/ },
    { name: 'method not a string', body: '{"jsonrpc":"2.0","id":1,"method":5}', code: -32600, message: /method/ },
    { name: 'params an array', body: '{"jsonrpc":"2.0","id":1,"method":"ping","params":[]}', code: -32600, message: /params/ },
    { name: 'id null', body: '{"jsonrpc":"2.0","id":null,"method":"ping"}', code: -32600, message: /\bid\b.*null/ },
    { name: 'id an object', body: '{"jsonrpc":"2.0","id":{},"method":"ping"}', code: -32600, message: /\bid\b/ },
    { name: 'id a fraction', body: '{"jsonrpc":"2.0","id":1.5,"method":"ping"}', code: -32600, message: /\bid\b.*integer/ },
    { name: 'id a boolean', body: '{"jsonrpc":"2.0","id":true,"method":"ping"}', code: -32600, message: /\bid\b/ },
    { name: 'method empty', body: '{"jsonrpc":"2.0","id":1,"method":""}', code: -32600, message: /method/ },
    { name: 'nesting 5000 deep', body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":${'['.repeat(5000)}${']'.repeat(5000)}}}`, code: [-32700, -32600], message: /depth|nest|deep/i },
    { name: 'both result and error', body: '{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}', code: -32600, message: /result.*error/ },
    { name: 'a JSON string, not an object', body: '"ping"', code: [-32700, -32600], message: /object|JSON/ },
    { name: 'duplicate keys', body: '{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}', code: [-32700, -32600], message: /duplicate/i },
    { name: 'invalid UTF-8', body: Buffer.concat([Buffer.from('{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"'), Buffer.from([0xff, 0xfe, 0xc0]), Buffer.from('"}}')]), code: -32700, message: /utf-?8|decode|byte/i },
    { name: 'empty body', body: '', code: -32700, message: /JSON|empty/i },
    { name: 'raw NUL byte inside a string', body: Buffer.from('{"jsonrpc":"2.0","id":1,"method":"pi\0ng"}'), code: -32700, message: /control|NUL|0x0/i },
    { name: 'raw NUL byte after the object', body: Buffer.from(`${PING}\0`), code: -32700, message: /JSON|end of file|NUL/i },
    { name: 'two objects in one body', body: `${PING}${PING}`, code: -32700, message: /JSON|end of file/i },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const r = await s.raw(c.body);
      const codes = [].concat(c.code);
      const err = assertRpcError(r, { status: 400, message: c.message });
      assert.ok(codes.includes(err.code), `code ${err.code} not in ${codes}: ${r.text}`);
      await assertServing(gw);
    });
  }

  test('a JSON string containing an escaped \\u0000 is valid JSON and is accepted', async () => {
    // RFC 8259 allows any code point escaped, U+0000 included.
    const r = await s.raw('{"jsonrpc":"2.0","id":"nul","method":"ping","params":{"_meta":{"note":"a\\u0000b"}}}');
    assert.equal(r.status, 200, `expected the ping to be answered, got ${r.status} ${r.text}`);
    assert.deepEqual(r.json, { jsonrpc: '2.0', id: 'nul', result: {} });
  });

  test('error responses echo a valid request id', async () => {
    const r = await s.raw('{"jsonrpc":"2.0","id":"keep-me","method":"ping","params":[]}');
    assertRpcError(r, { status: 400, code: -32600, id: 'keep-me' });
  });
});

describe('HTTP header rules', () => {
  test('missing Content-Type → 415', async () => {
    const r = await s.raw(PING, { headers: { 'Content-Type': null } });
    assertRpcError(r, { status: 415, message: /Content-Type.*application\/json/ });
    await assertServing(gw);
  });

  test('Content-Type text/plain → 415', async () => {
    const r = await s.raw(PING, { headers: { 'Content-Type': 'text/plain' } });
    assertRpcError(r, { status: 415, message: /Content-Type/ });
    await assertServing(gw);
  });

  test('Content-Type application/jsonx (a look-alike) → 415', async () => {
    const r = await s.raw(PING, { headers: { 'Content-Type': 'application/jsonx' } });
    assertRpcError(r, { status: 415, message: /Content-Type must be application\/json/ });
  });

  test('Accept of look-alike types → 406', async () => {
    const r = await s.raw(PING, { headers: { Accept: 'application/jsonx, text/event-streamy' } });
    assertRpcError(r, { status: 406, message: /Accept.*text\/event-stream/ });
  });

  test('Content-Type with charset parameter is accepted', async () => {
    const r = await s.raw(PING, { headers: { 'Content-Type': 'application/json; charset=utf-8' } });
    assert.equal(r.status, 200, r.text);
  });

  test('Accept without text/event-stream → 406', async () => {
    const r = await s.raw(PING, { headers: { Accept: 'application/json' } });
    assertRpcError(r, { status: 406, message: /Accept.*text\/event-stream/ });
    await assertServing(gw);
  });

  test('no Accept header → 406', async () => {
    const r = await s.raw(PING, { headers: { Accept: null } });
    assertRpcError(r, { status: 406, message: /Accept/ });
    await assertServing(gw);
  });

  test('unsupported MCP-Protocol-Version → 400 listing the supported versions', async () => {
    const r = await s.raw(PING, { version: '1999-01-01' });
    assertRpcError(r, { status: 400, message: [/1999-01-01/, /2025-11-25/, /supported/i] });
    await assertServing(gw);
  });
});

describe('sessions', () => {
  test('no Mcp-Session-Id on a non-initialize request → 400', async () => {
    const r = await post(gw.url, PING);
    assertRpcError(r, { status: 400, message: /Mcp-Session-Id/ });
    await assertServing(gw);
  });

  for (const [name, sid] of [
    ['unknown', 'A'.repeat(43)],
    ['garbage', '!!not-a-session$$'],
    ['too long (8 KiB)', 'x'.repeat(8192)],
  ]) {
    test(`${name} session id → 404`, async () => {
      const r = await post(gw.url, PING, { session: sid });
      assertRpcError(r, { status: 404, message: /session/i });
      await assertServing(gw);
    });
  }

  test('after DELETE the session → 404; DELETE again → 404', async () => {
    const t = await openSession(gw.url);
    assert.equal((await t.rpc('ping')).status, 200);
    const d = await t.close();
    assert.ok(d.status === 200 || d.status === 204, `DELETE: ${d.status} ${d.text}`);
    assertRpcError(await t.rpc('ping'), { status: 404, message: /session/i });
    assertRpcError(await t.close(), { status: 404, message: /session/i });
    await assertServing(gw);
  });

  test('DELETE of an unknown session → 404', async () => {
    const r = await request(gw.url, { method: 'DELETE', headers: { 'Mcp-Session-Id': 'B'.repeat(43), 'MCP-Protocol-Version': PROTOCOL } });
    assertRpcError(r, { status: 404, message: /session/i });
    await assertServing(gw);
  });

  test('a session of /mcp is not valid on /mcp/a', async () => {
    const r = await post(`${gw.url}/a`, PING, { session: s.id });
    assertRpcError(r, { status: 404, message: /session/i });
  });

  test('/mcp/a serves its own session with unprefixed names', async () => {
    const a = await openSession(`${gw.url}/a`);
    const r = await a.callTool('tool', { text: 'direct' });
    assert.equal(r.json?.result?.content?.[0]?.text, 'a:direct', r.text);
  });
});

describe('Host and Origin (DNS rebinding)', () => {
  test('Host: evil.example → 403 naming the host', async () => {
    const r = await s.raw(PING, { headers: { Host: 'evil.example' } });
    assertRpcError(r, { status: 403, message: /evil\.example/ });
    await assertServing(gw);
  });

  test('Host: evil.example:1234 → 403', async () => {
    const r = await s.raw(PING, { headers: { Host: `evil.example:${gw.port}` } });
    assertRpcError(r, { status: 403, message: /evil\.example/ });
  });

  test('Origin http://evil.example → 403 naming the origin', async () => {
    const r = await s.raw(PING, { headers: { Origin: 'http://evil.example' } });
    assertRpcError(r, { status: 403, message: /evil\.example/ });
    await assertServing(gw);
  });

  test('Host: localhost:evil (a port that is not a number) → 403', async () => {
    const r = await s.raw(PING, { headers: { Host: 'localhost:evil' } });
    assertRpcError(r, { status: 403, message: /Host "localhost:evil" is not allowed/ });
  });

  test('Host with a byte that is not UTF-8 → 403 quoting it as \\xff (it was a 500 "out of memory")', async () => {
    // Raw bytes on a socket: an HTTP client library would send the header as UTF-8.
    const head = `POST /mcp HTTP/1.1\r\nHost: evil\xff.example\r\nContent-Type: application/json\r\nAccept: */*\r\nContent-Length: ${PING.length}\r\nConnection: close\r\n\r\n`;
    const out = await new Promise((resolve, reject) => {
      const sock = net.connect(gw.port, '127.0.0.1', () => sock.end(Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(PING)])));
      let d = '';
      sock.on('data', (c) => (d += c.toString('latin1')));
      sock.on('close', () => resolve(d));
      sock.on('error', reject);
    });
    assert.match(out, /^HTTP\/1\.1 403 /, out);
    assert.match(out, /Host \\"evil\\\\xff\.example\\" is not allowed/, out);
    await assertServing(gw);
  });

  test('Origin http://localhost:evil.example → 403', async () => {
    const r = await s.raw(PING, { headers: { Origin: 'http://localhost:evil.example' } });
    assertRpcError(r, { status: 403, message: /Origin "http:\/\/localhost:evil\.example"/ });
  });

  test('Origin http://localhost:6274 (the Inspector) is allowed', async () => {
    const r = await s.raw(PING, { headers: { Origin: 'http://localhost:6274' } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { jsonrpc: '2.0', id: 1, result: {} });
  });

  test('Host localhost:PORT is allowed', async () => {
    const r = await s.raw(PING, { headers: { Host: `localhost:${gw.port}` } });
    assert.equal(r.status, 200, r.text);
  });
});

describe('routing', () => {
  test('unknown path → 404', async () => {
    const r = await request(`${gw.base}/nope`);
    assert.equal(r.status, 404, r.text);
    assert.match(r.text, /\/mcp/);
    await assertServing(gw);
  });

  test('PUT /mcp → 405 with Allow', async () => {
    const r = await request(gw.url, { method: 'PUT', headers: { ...JSON_HEADERS, 'Mcp-Session-Id': s.id }, body: PING });
    assert.equal(r.status, 405, r.text);
    assert.ok(r.headers.allow, `no Allow header: ${JSON.stringify(r.headers)}`);
    for (const m of ['GET', 'POST', 'DELETE']) assert.match(r.headers.allow, new RegExp(m));
    assert.match(r.text, /PUT/);
    await assertServing(gw);
  });

  test('/mcp/nosuchserver → 404 naming it', async () => {
    const r = await post(`${gw.url}/nosuchserver`, PING, { session: s.id });
    assertRpcError(r, { status: 404, message: /nosuchserver/ });
    await assertServing(gw);
  });

  test('/healthz and /metrics answer', async () => {
    assert.equal((await request(`${gw.base}/healthz`)).status, 200);
    const m = await request(`${gw.base}/metrics`);
    assert.equal(m.status, 200);
    assert.match(m.headers['content-type'] ?? '', /text\/plain/);
  });
});

describe('JSON-RPC level errors', () => {
  test('unknown method → -32601 naming it', async () => {
    const r = await s.rpc('foo/bar', {}, { id: 41 });
    assertRpcError(r, { status: 200, code: -32601, message: /foo\/bar/, id: 41 });
    await assertServing(gw);
  });

  test('tools/call of an unknown tool → -32602 naming it', async () => {
    const r = await s.callTool('no_such_tool', {}, { id: 42 });
    assertRpcError(r, { status: 200, code: -32602, message: /no_such_tool/, id: 42 });
    await assertServing(gw);
  });

  test('tools/call of an unprefixed shared name is unknown under when-needed', async () => {
    const r = await s.callTool('tool', {});
    assertRpcError(r, { code: -32602, message: /\btool\b/ });
  });

  test('tools/call without a name → -32602', async () => {
    const r = await s.rpc('tools/call', {}, { id: 44 });
    assertRpcError(r, { code: -32602, message: /name/, id: 44 });
  });

  test('tools/call with arguments that are not an object → -32602, not forwarded', async () => {
    // MCP: CallToolRequest.params.arguments is an object { [key: string]: unknown }.
    const r = await s.rpc('tools/call', { name: 'b__tool', arguments: [1, 2] }, { id: 45 });
    assertRpcError(r, { code: -32602, message: /arguments/, id: 45 });
    await assertServing(gw);
  });

  test('initialize again inside a session → refused', async () => {
    const r = await s.rpc('initialize', { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: 'x', version: '1' } }, { id: 46 });
    assertRpcError(r, { code: -32600, message: /already initialized/ });
  });

  test('a notification and a stray response are accepted with 202', async () => {
    assert.equal((await s.raw('{"jsonrpc":"2.0","method":"notifications/whatever"}')).status, 202);
    assert.equal((await s.raw('{"jsonrpc":"2.0","id":"never-asked","result":{}}')).status, 202);
    await assertServing(gw);
  });

  test('resources/read of an unknown uri → -32002 naming it', async () => {
    const r = await s.rpc('resources/read', { uri: 'nope://missing' }, { id: 43 });
    assertRpcError(r, { status: 200, code: -32002, message: /nope:\/\/missing/, id: 43 });
    await assertServing(gw);
  });

  test('resources/read of a known uri is answered', async () => {
    const r = await s.rpc('resources/read', { uri: 'mini://hello' });
    assert.match(r.json?.result?.contents?.[0]?.text ?? '', /^hello from [ab]$/, r.text);
    const b = await openSession(`${gw.url}/b`);
    const rb = await b.rpc('resources/read', { uri: 'mini://hello' });
    assert.equal(rb.json?.result?.contents?.[0]?.text, 'hello from b', rb.text);
  });

  test('a resource URI offered by two servers is listed once in the aggregate', async () => {
    // a and b both offer mini://hello; resources/read can only reach one of them, so listing
    // it twice advertises a resource the client cannot read.
    const r = await s.rpc('resources/list');
    const uris = (r.json?.result?.resources ?? []).map((x) => x.uri);
    assert.ok(uris.includes('mini://hello'), r.text);
    assert.equal(uris.length, new Set(uris).size, `duplicate URIs in resources/list: ${JSON.stringify(uris)}`);
  });

  test('tools/call works afterwards', async () => {
    const r = await s.callTool('b__tool', { text: 'ok' });
    assert.equal(r.json?.result?.content?.[0]?.text, 'b:ok', r.text);
    const u = await s.callTool('only_a');
    assert.equal(u.json?.result?.content?.[0]?.text, 'a:extra', u.text);
  });
});
