// MCP 2026-07-28 on the downstream side: era detection per request, the transport's "Server
// Validation" (exact status, code and message of every refusal), server/discover, stateless calls
// through the legacy upstream sessions, resultType and cache hints, close = cancel, and legacy
// sessions unaffected.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { assertRpcError, baseConfig, MINI, openSession, post, startGateway, until } from './lib.mjs';

const V = '2026-07-28';
let gw;
before(async () => {
  gw = await startGateway(
    baseConfig({
      limits: { shutdown_grace: '5s', sse_keepalive: '1s' },
      servers: [{ name: 'a', command: process.execPath, args: [MINI, '--label', 'a', '--era-tools'] }],
    }),
  );
});
after(async () => {
  if (gw) await gw.stop();
});

const META = { 'io.modelcontextprotocol/protocolVersion': V, 'io.modelcontextprotocol/clientInfo': { name: 't', version: '1' }, 'io.modelcontextprotocol/clientCapabilities': {} };

/** A modern request: headers mirrored from the body unless overridden (null drops one). */
function modern(method, params = {}, { id = 1, headers = {}, meta = META } = {}) {
  const body = { jsonrpc: '2.0', id, method, params: { ...params, _meta: meta } };
  const h = { 'Mcp-Method': method };
  if (params.name !== undefined && method !== 'resources/read') h['Mcp-Name'] = params.name;
  if (params.uri !== undefined) h['Mcp-Name'] = params.uri;
  return post(gw.url, body, { version: V, headers: { ...h, ...headers } });
}

test('server/discover: both eras, the aggregate capabilities, serverInfo, cache hints, no session', async () => {
  const r = await modern('server/discover');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers['mcp-session-id'], undefined);
  const res = r.json.result;
  assert.equal(res.resultType, 'complete');
  assert.deepEqual(res.supportedVersions, [V, '2025-11-25', '2025-06-18', '2025-03-26']);
  // Computed from the servers behind the view: the mini fixture offers tools and resources only.
  assert.deepEqual(res.capabilities, { resources: { listChanged: true }, tools: { listChanged: true } });
  assert.equal(res._meta['io.modelcontextprotocol/serverInfo'].name, 'gatehouse');
  assert.equal(res.ttlMs, 0);
  assert.equal(res.cacheScope, 'private');
});

test('tools/list: resultType and private cache hints', async () => {
  const r = await modern('tools/list');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.result.resultType, 'complete');
  assert.equal(r.json.result.cacheScope, 'private');
  assert.ok(r.json.result.tools.some((t) => t.name === 'tool'));
});

test('stateless tools/call reaches the legacy server through the gateway session; no Mcp-Session-Id', async () => {
  const r = await modern('tools/call', { name: 'tool', arguments: { text: 'hi' } }, { id: 'x1' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers['mcp-session-id'], undefined);
  assert.deepEqual(r.json, { jsonrpc: '2.0', id: 'x1', result: { content: [{ type: 'text', text: 'a:hi' }], resultType: 'complete' } });
  // The io.modelcontextprotocol/ _meta keys are not passed to the legacy server.
});

test('progress streams on the request SSE response, with the client token', async () => {
  const r = await modern('tools/call', { name: 'progress', arguments: {} }, { meta: { ...META, progressToken: 'tok' } });
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers['content-type'], /text\/event-stream/);
  const progress = r.text.split('\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6))).filter((m) => m.method === 'notifications/progress');
  assert.deepEqual(progress.map((m) => [m.params.progressToken, m.params.progress]), [['tok', 1], ['tok', 2]]);
  assert.equal(r.json.result.content[0].text, 'done');
});

test('resources/read: Mcp-Name carries the URI; result gets cache hints', async () => {
  const r = await modern('resources/read', { uri: 'mini://hello' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.result.contents[0].text, 'hello from a');
  assert.equal(r.json.result.ttlMs, 0);
  assert.equal(r.json.result.cacheScope, 'private');
});

test('header values are compared without surrounding whitespace; an unknown resource is -32602', async () => {
  const r = await modern('tools/call', { name: 'tool', arguments: { text: 'w' } }, { headers: { 'Mcp-Name': 'tool  ' } });
  assert.equal(r.status, 200, r.text);
  assertRpcError(await modern('resources/read', { uri: 'mini://nope' }), { status: 200, code: -32602, message: [/Resource not found: mini:\/\/nope/] });
});

test('Mcp-Name in the base64 sentinel encoding is decoded before the comparison', async () => {
  const enc = `=?base64?${Buffer.from('tool').toString('base64')}?=`;
  const r = await modern('tools/call', { name: 'tool', arguments: { text: 'b' } }, { headers: { 'Mcp-Name': enc } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.result.content[0].text, 'a:b');
  const bad = await modern('tools/call', { name: 'tool' }, { headers: { 'Mcp-Name': '=?base64?!!!?=' } });
  assertRpcError(bad, { status: 400, code: -32020, message: [/Mcp-Name header value '=\?base64\?!!!\?=' is not valid/] });
});

test('validation: every refusal with its status, code and message', async () => {
  assertRpcError(await modern('tools/call', { name: 'tool' }, { headers: { 'Mcp-Name': 'other' } }), {
    status: 400,
    code: -32020,
    message: [/^Header mismatch: Mcp-Name header value 'other' does not match body value 'tool'/],
    id: 1,
  });
  assertRpcError(await modern('tools/call', { name: 'tool' }, { headers: { 'Mcp-Name': null } }), {
    status: 400,
    code: -32020,
    message: [/the Mcp-Name header is missing \(required for tools\/call; body params.name 'tool'\)/],
  });
  assertRpcError(await modern('tools/list', {}, { headers: { 'Mcp-Method': 'prompts/list' } }), {
    status: 400,
    code: -32020,
    message: [/Mcp-Method header value 'prompts\/list' does not match body value 'tools\/list'/],
  });
  assertRpcError(await modern('tools/list', {}, { headers: { 'Mcp-Method': null } }), {
    status: 400,
    code: -32020,
    message: [/the Mcp-Method header is missing \(body method 'tools\/list'\)/],
  });
  // The body says 2026-07-28, the header another known version.
  assertRpcError(await modern('tools/list', {}, { headers: { 'MCP-Protocol-Version': '2025-11-25' } }), {
    status: 400,
    code: -32020,
    message: [/MCP-Protocol-Version header value '2025-11-25' does not match body value '2026-07-28'/],
  });
  assertRpcError(await modern('tools/list', {}, { headers: { 'MCP-Protocol-Version': null } }), {
    status: 400,
    code: -32020,
    message: [/the MCP-Protocol-Version header is missing \(body _meta says '2026-07-28'\)/],
  });
  const noVersion = { ...META };
  delete noVersion['io.modelcontextprotocol/protocolVersion'];
  assertRpcError(await modern('tools/list', {}, { meta: noVersion }), {
    status: 400,
    code: -32602,
    message: [/params._meta\["io.modelcontextprotocol\/protocolVersion"\] is missing/],
  });
  const noCaps = { ...META };
  delete noCaps['io.modelcontextprotocol/clientCapabilities'];
  assertRpcError(await modern('tools/list', {}, { meta: noCaps }), {
    status: 400,
    code: -32602,
    message: [/params._meta\["io.modelcontextprotocol\/clientCapabilities"\] is missing/],
  });
  const e = assertRpcError(
    await modern('tools/list', {}, { headers: { 'MCP-Protocol-Version': '2099-01-01' }, meta: { ...META, 'io.modelcontextprotocol/protocolVersion': '2099-01-01' } }),
    { status: 400, code: -32022, message: [/^Unsupported protocol version: 2099-01-01/] },
  );
  assert.deepEqual(e.data, { supported: [V, '2025-11-25', '2025-06-18', '2025-03-26'], requested: '2099-01-01' });
  assertRpcError(await modern('initialize', {}), { status: 404, code: -32601, message: [/Method not found: initialize/] });
  assertRpcError(await modern('ping', {}), { status: 404, code: -32601, message: [/Method not found: ping/] });
  assertRpcError(await modern('nonsense/method', {}), { status: 404, code: -32601, message: [/Method not found: nonsense\/method/] });
});

test('a server-to-client request for a modern client becomes an InputRequiredResult (MRTR; more in mrtr2026.test.mjs)', async () => {
  const r = await modern('tools/call', { name: 'ask', arguments: {} }, { meta: { ...META, 'io.modelcontextprotocol/clientCapabilities': { sampling: {} } } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.result.resultType, 'input_required');
  assert.deepEqual(Object.values(r.json.result.inputRequests), [{ method: 'sampling/createMessage', params: { messages: [], maxTokens: 5 } }]);
});

test('closing the response stream cancels the call upstream', async () => {
  const body = JSON.stringify({ jsonrpc: '2.0', id: 'c1', method: 'tools/call', params: { name: 'hang', arguments: {}, _meta: META } });
  const u = new URL(gw.url);
  const mark = gw.lines.length;
  await new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': V, 'mcp-method': 'tools/call', 'mcp-name': 'hang', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        assert.equal(res.statusCode, 200);
        res.once('data', () => {
          req.destroy(); // the priming event arrived: the call is upstream; hang up
          resolve();
        });
      },
    );
    req.on('error', (e) => (e.code === 'ECONNRESET' ? resolve() : reject(e)));
    req.end(body);
  });
  await until(() => gw.lines.slice(mark).find((l) => l.includes('mini-server: got notifications/cancelled')), { timeout: 5000, what: `notifications/cancelled upstream\n${gw.tail()}` });
});

test('legacy sessions are unaffected: session, Mcp-Session-Id, no resultType, disconnect is not cancellation', async () => {
  const s = await openSession(gw.url);
  assert.ok(s.id);
  const r = await s.callTool('tool', { text: 'old' });
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.result, { content: [{ type: 'text', text: 'a:old' }] });
  const l = await s.rpc('tools/list');
  assert.equal(l.json.result.resultType, undefined);
  // A modern-looking version header with a session id stays legacy (and is refused as before).
  const m = await s.raw({ jsonrpc: '2.0', id: 5, method: 'ping' }, { version: V });
  assertRpcError(m, { status: 400, code: -32600, message: [/unsupported MCP-Protocol-Version "2026-07-28"/] });
});
