// MCP 2026-07-28 subscriptions/listen: the POST whose answer is a long-lived SSE stream. The
// acknowledgement comes first (the honoured filter, the subscription id); an upstream's
// tools/list_changed arrives on a stream that opted in, tagged with the subscription id, and not
// on one that did not; keep-alive comments flow; closing the stream ends the subscription.
// Also the other per-request rule on notifications: notifications/message only at or above the
// request's _meta logLevel, and none at all without one.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { baseConfig, MINI, post, sleep, startGateway, until } from './lib.mjs';

const V = '2026-07-28';
const SUB_ID = 'io.modelcontextprotocol/subscriptionId';
let gw;
before(async () => {
  gw = await startGateway(
    baseConfig({
      limits: { shutdown_grace: '5s', sse_keepalive: '1s' },
      servers: [{ name: 'a', command: process.execPath, args: [MINI, '--label', 'a', '--grow-tools', '--log-tool'] }],
    }),
  );
});
after(async () => {
  if (gw) await gw.stop();
});

const META = { 'io.modelcontextprotocol/protocolVersion': V, 'io.modelcontextprotocol/clientInfo': { name: 't', version: '1' }, 'io.modelcontextprotocol/clientCapabilities': {} };

function modern(method, params = {}, { id = 1, meta = META } = {}) {
  const h = { 'Mcp-Method': method };
  if (params.name !== undefined) h['Mcp-Name'] = params.name;
  return post(gw.url, { jsonrpc: '2.0', id, method, params: { ...params, _meta: meta } }, { version: V, headers: h });
}

/** Opens a listen stream; collects its SSE messages and comment lines as they arrive. */
function listen(notifications, id) {
  const body = JSON.stringify({ jsonrpc: '2.0', id, method: 'subscriptions/listen', params: { notifications, _meta: META } });
  const u = new URL(gw.url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          Accept: 'application/json, text/event-stream',
          'MCP-Protocol-Version': V,
          'Mcp-Method': 'subscriptions/listen',
          'Content-Length': Buffer.byteLength(body),
        },
      },
      (res) => {
        const s = { res, status: res.statusCode, type: res.headers['content-type'], messages: [], comments: [], ended: false, req };
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          buf += d;
          let i;
          while ((i = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, i).replace(/\r$/, '');
            buf = buf.slice(i + 1);
            if (line.startsWith('data: {')) s.messages.push(JSON.parse(line.slice(6)));
            else if (line.startsWith(':')) s.comments.push(line);
          }
        });
        res.on('end', () => (s.ended = true));
        res.on('error', () => (s.ended = true));
        resolve(s);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const named = (s, method) => s.messages.filter((m) => m.method === method);

test('server/discover advertises listChanged (subscriptions/listen carries it)', async () => {
  const r = await modern('server/discover');
  assert.equal(r.status, 200, r.text);
  const caps = r.json.result.capabilities;
  assert.equal(caps.tools.listChanged, true);
  assert.equal(caps.prompts, undefined, 'computed from the servers: the mini fixture has no prompts');
  assert.equal(caps.resources.listChanged, true);
  assert.equal(caps.resources.subscribe, undefined);
});

test('listen: acknowledgement first, then the opted-in list change; not after the stream closes', async () => {
  const tools = await listen({ toolsListChanged: true, resourceSubscriptions: ['mini://hello'] }, 'L1');
  const prompts = await listen({ promptsListChanged: true }, 7);
  try {
    assert.equal(tools.status, 200);
    assert.match(tools.type, /text\/event-stream/);
    await until(() => tools.messages.length >= 1 && prompts.messages.length >= 1, { what: 'acknowledgements' });
    assert.deepEqual(tools.messages[0], {
      jsonrpc: '2.0',
      method: 'notifications/subscriptions/acknowledged',
      params: { _meta: { [SUB_ID]: 'L1' }, notifications: { toolsListChanged: true } },
    });
    assert.deepEqual(prompts.messages[0].params, { _meta: { [SUB_ID]: 7 }, notifications: { promptsListChanged: true } });

    // Keep-alive comments while nothing happens (limits.sse_keepalive: 1s).
    await until(() => tools.comments.some((c) => c.startsWith(': keep-alive')), { timeout: 4000, what: 'a keep-alive comment' });

    const r = await modern('tools/call', { name: 'grow', arguments: {} });
    assert.equal(r.status, 200, r.text);
    await until(() => named(tools, 'notifications/tools/list_changed').length === 1, { what: 'tools/list_changed on the listen stream' });
    assert.deepEqual(named(tools, 'notifications/tools/list_changed')[0].params, { _meta: { [SUB_ID]: 'L1' } });
    // The catalog already holds the new tool when the notification arrives.
    const list = await modern('tools/list');
    assert.ok(list.json.result.tools.some((t) => t.name === 'grown-1'), list.text);
    // The prompts-only listener hears nothing of it; neither stream carries request-scoped traffic.
    await sleep(300);
    assert.deepEqual(prompts.messages.map((m) => m.method), ['notifications/subscriptions/acknowledged']);
    assert.equal(tools.messages.length, 2);

    // Closing the stream ends the subscription: a later change does not reach it.
    tools.req.destroy();
    await sleep(200);
    const before = tools.messages.length;
    const again = await modern('tools/call', { name: 'grow', arguments: {} }, { id: 2 });
    assert.equal(again.status, 200, again.text);
    await until(async () => (await modern('tools/list', {}, { id: 3 })).json.result.tools.some((t) => t.name === 'grown-2'), { what: 'grown-2 listed' });
    await sleep(300);
    assert.equal(tools.messages.length, before);
  } finally {
    tools.req.destroy();
    prompts.req.destroy();
  }
});

test('a fresh listen after a closed one still hears changes (the closed one was unlisted, not the feature)', async () => {
  const s = await listen({ toolsListChanged: true }, 'L2');
  try {
    await until(() => s.messages.length >= 1, { what: 'acknowledgement' });
    const r = await modern('tools/call', { name: 'grow', arguments: {} }, { id: 4 });
    assert.equal(r.status, 200, r.text);
    await until(() => named(s, 'notifications/tools/list_changed').length === 1, { what: 'tools/list_changed' });
  } finally {
    s.req.destroy();
  }
});

test('listen without a notification filter is 400 -32602 naming params.notifications', async () => {
  const r = await post(gw.url, { jsonrpc: '2.0', id: 9, method: 'subscriptions/listen', params: { _meta: META } }, { version: V, headers: { 'Mcp-Method': 'subscriptions/listen' } });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error.code, -32602);
  assert.match(r.json.error.message, /params\.notifications/);
});

test('the gateway still answers after listen streams came and went', async () => {
  const r = await modern('tools/call', { name: 'tool', arguments: { text: 'x' } }, { id: 10 });
  assert.equal(r.json.result.content[0].text, 'a:x');
});

const logLines = (r) =>
  r.text
    .split('\n')
    .filter((l) => l.startsWith('data: {'))
    .map((l) => JSON.parse(l.slice(6)))
    .filter((m) => m.method === 'notifications/message')
    .map((m) => m.params.level);

test('notifications/message: none without _meta logLevel; only at or above it with one', async () => {
  const none = await modern('tools/call', { name: 'log', arguments: {} }, { id: 20 });
  assert.equal(none.status, 200, none.text);
  assert.equal(none.json.result.content[0].text, 'logged');
  assert.deepEqual(logLines(none), []);
  const warn = await modern('tools/call', { name: 'log', arguments: {} }, { id: 21, meta: { ...META, 'io.modelcontextprotocol/logLevel': 'warning' } });
  assert.equal(warn.json.result.content[0].text, 'logged');
  assert.deepEqual(logLines(warn), ['warning', 'error']);
  const all = await modern('tools/call', { name: 'log', arguments: {} }, { id: 22, meta: { ...META, 'io.modelcontextprotocol/logLevel': 'debug' } });
  assert.deepEqual(logLines(all), ['debug', 'warning', 'error']);
});
