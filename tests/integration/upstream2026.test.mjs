// The upstream side of MCP 2026-07-28: the gateway probes each server with server/discover and
// falls back to initialize on anything that is not a modern answer (a legacy server's -32601, a
// silent one's timeout), or refuses to when `protocol: 2026-07-28` is pinned. A modern server
// (mini fixture --modern, over stdio and HTTP) serves legacy sessions (its InputRequiredResults
// become ordinary server-to-client requests, the call retried with the answers and the server's
// requestState) and modern clients (its InputRequiredResult relayed with the requestState sealed
// to that server and call). Headers mirror the body over HTTP, list changes arrive through
// subscriptions/listen, cancellation is notifications/cancelled on stdio and a closed stream on
// HTTP, and a modern server that dies mid-call fails that call with its name, nothing more.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { assertRpcError, baseConfig, JSON_HEADERS, MINI, miniHttp, openSession, post, request, startGateway, until } from './lib.mjs';

const V = '2026-07-28';
const node = process.execPath;
const modernStdio = (name, extra = []) => ({ name, command: node, args: [MINI, '--modern', '--label', name, ...extra] });

/** Starts the modern fixture over HTTP; resolves {url, stderr(), kill()}. */
const modernHttp = (label) => miniHttp(['--modern', '--label', label]);

/** Opens a legacy session declaring caps. */
async function legacySession(url, caps) {
  const init = await post(url, { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: caps, clientInfo: { name: 't', version: '1' } } }, { version: null });
  assert.equal(init.status, 200, init.text);
  const sid = init.headers['mcp-session-id'];
  await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, { session: sid });
  return sid;
}

/**
 * POSTs body on session sid and reads its SSE answer as it comes: onRequest(msg) is called for
 * each server-to-client request and its return value (a result object, or {error}) is POSTed
 * back as the answer. Resolves every message of the stream.
 */
function streamCall(url, sid, body, onRequest = () => ({})) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { ...JSON_HEADERS, 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': '2025-11-25' } }, (res) => {
      const msgs = [];
      let buf = '';
      res.on('data', (c) => {
        buf += c;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('');
          if (!data) continue;
          const m = JSON.parse(data);
          msgs.push(m);
          if (m.method && m.id !== undefined) {
            const a = onRequest(m);
            const answer = a && a.error ? { jsonrpc: '2.0', id: m.id, error: a.error } : { jsonrpc: '2.0', id: m.id, result: a };
            post(url, answer, { session: sid }).catch(reject);
          }
        }
      });
      res.on('end', () => resolve(msgs));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

const meta = (caps = {}, extra = {}) => ({
  'io.modelcontextprotocol/protocolVersion': V,
  'io.modelcontextprotocol/clientInfo': { name: 't', version: '1' },
  'io.modelcontextprotocol/clientCapabilities': caps,
  ...extra,
});
function modernCall(url, name, args, { id = 1, caps = {}, more = {} } = {}) {
  const body = { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args, ...more, _meta: meta(caps) } };
  return post(url, body, { version: V, headers: { 'Mcp-Method': 'tools/call', 'Mcp-Name': name } });
}
const final = (msgs) => msgs.find((m) => m.id !== undefined && !m.method && (m.result || m.error));

describe('probe and fallback (stdio)', () => {
  let gw;
  before(async () => {
    gw = await startGateway(
      baseConfig({
        prefix: { mode: 'always' },
        servers: [
          modernStdio('m'),
          { name: 'l', command: node, args: [MINI, '--label', 'l'] },
          { name: 's', command: node, args: [MINI, '--label', 's', '--silent-discover'] },
          { name: 'pin', command: node, args: [MINI, '--label', 'pin'], protocol: V, timeouts: { first_byte: '1s' } },
          { ...modernStdio('old'), protocol: '2025-11-25' },
        ],
      }),
    );
  });
  after(async () => {
    if (gw) await gw.stop();
  });

  test('a modern server is used as one, a legacy one (-32601 or silence) gets initialize', async () => {
    const era = (name) => gw.events.find((e) => e.event === 'upstream_era' && e.msg.startsWith(`server ${name}`))?.msg;
    await until(() => era('m') && era('l') && era('s'), { timeout: 10000, what: 'three probes' });
    assert.match(era('m'), /^server m speaks 2026-07-28 \(server\/discover lists 2026-07-28\)/);
    assert.match(era('l'), /speaks the legacy era \(2025-11-25; it has no server\/discover\): using initialize/);
    assert.match(era('s'), /speaks the legacy era \(2025-11-25\): no answer to server\/discover: .*did not answer within 5000 ms; using initialize/);
    const ready = JSON.parse((await request(`${gw.base}/readyz`)).text).servers;
    assert.deepEqual([ready.m.protocol, ready.l.protocol, ready.s.protocol], [V, '2025-11-25', '2025-11-25']);
    const s = await openSession(gw.url);
    for (const name of ['m', 'l', 's']) {
      const r = await s.callTool(`${name}__tool`, { text: 'x' });
      assert.equal(r.json?.result?.content?.[0]?.text, `${name}:x`, r.text);
      assert.equal(r.json.result.resultType, undefined, 'a legacy client gets no resultType');
    }
  });

  test('protocol: 2026-07-28 does not fall back; 2025-11-25 never probes', async () => {
    const st = await until(
      async () => {
        const r = await request(`${gw.base}/readyz`);
        const j = JSON.parse(r.text).servers;
        return j.pin.state === 'failed' && j.old.state === 'failed' && j;
      },
      { timeout: 10000, what: 'pin and old failed' },
    );
    assert.match(st.pin.why, /does not speak 2026-07-28 \(server\/discover answered -32601.*\), and protocol: 2026-07-28 allows no fallback; retrying in/);
    assert.match(st.old.why, /initialize failed: This server speaks only 2026-07-28/);
    assert.ok(!gw.events.some((e) => e.event === 'upstream_era' && e.msg.startsWith('server old')));
  });
});

describe('a modern stdio server behind the gateway', () => {
  let gw;
  before(async () => {
    gw = await startGateway(baseConfig({ limits: { shutdown_grace: '5s', sse_keepalive: '1s' }, servers: [modernStdio('m')] }));
  });
  after(async () => {
    if (gw) await gw.stop();
  });

  test('legacy client: tools, prompts, resources, progress; _meta carries only the capabilities it declared', async () => {
    const sid = await legacySession(gw.url, { sampling: {} });
    const caps = final(await streamCall(gw.url, sid, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'caps', arguments: {} } }));
    assert.deepEqual(JSON.parse(caps.result.content[0].text), { sampling: {} });
    const prog = await streamCall(gw.url, sid, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'progress', _meta: { progressToken: 'tok' } } });
    assert.deepEqual(
      prog.filter((m) => m.method === 'notifications/progress').map((m) => [m.params.progressToken, m.params.progress]),
      [['tok', 1], ['tok', 2]],
    );
    const s = await openSession(gw.url);
    const p = await s.rpc('prompts/get', { name: 'greet', arguments: { who: 'ann' } });
    assert.equal(p.json.result.messages[0].content.text, 'hello ann from m');
    const r = await s.rpc('resources/read', { uri: 'mini://hello' });
    assert.deepEqual(r.json.result, { contents: [{ uri: 'mini://hello', mimeType: 'text/plain', text: 'hello from m' }] });
    const sub = await s.rpc('resources/subscribe', { uri: 'mini://hello' });
    assert.deepEqual(sub.json.result, {}, 'answered by the gateway: 2026-07-28 has no resources/subscribe');
  });

  test('legacy client: MRTR rounds become sampling / elicitation / roots requests; the retry completes', async () => {
    const sid = await legacySession(gw.url, { sampling: {}, elicitation: {}, roots: {} });
    let n = 0;
    const msgs = await streamCall(gw.url, sid, { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'ask', arguments: { times: 2 }, _meta: { progressToken: 9 } } }, (req) => {
      assert.equal(req.method, 'sampling/createMessage');
      assert.equal(req.params.messages[0].content.text, `question ${n + 1}`);
      return { role: 'assistant', content: { type: 'text', text: `A${++n}` }, model: 'm' };
    });
    const f = final(msgs);
    assert.equal(f.id, 7);
    assert.match(f.result.content[0].text, /"A1".*\|.*"A2"/);
    assert.deepEqual(msgs.filter((m) => m.method === 'notifications/progress').map((m) => [m.params.progressToken, m.params.progress]), [[9, 1], [9, 2]]);
    const el = final(await streamCall(gw.url, sid, { jsonrpc: '2.0', id: 8, method: 'tools/call', params: { name: 'ask', arguments: { kind: 'elicitation' } } }, () => ({ action: 'accept', content: { name: 'bob' } })));
    assert.equal(el.result.content[0].text, '{"action":"accept","content":{"name":"bob"}}');
    const roots = final(await streamCall(gw.url, sid, { jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'ask', arguments: { kind: 'roots' } } }, () => ({ roots: [{ uri: 'file:///w' }] })));
    assert.equal(roots.result.content[0].text, '{"roots":[{"uri":"file:///w"}]}');
  });

  test('legacy client: an error answer or an undeclared capability ends the call with a clear error', async () => {
    const sid = await legacySession(gw.url, { sampling: {} });
    const refused = final(await streamCall(gw.url, sid, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'ask', arguments: {} } }, () => ({ error: { code: -1, message: 'user said no' } })));
    assert.equal(refused.error.code, -1);
    assert.match(refused.error.message, /the client could not answer server "m"'s request for input "q0": user said no/);
    // The server checks the capabilities the gateway declared for this client: none for elicitation.
    const missing = final(await streamCall(gw.url, sid, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'ask', arguments: { kind: 'elicitation' } } }));
    assert.equal(missing.error.code, -32021, JSON.stringify(missing));
  });

  test('modern client: InputRequiredResult relayed with a sealed requestState; the retry reaches the server', async () => {
    const caps = { elicitation: {} };
    const first = await modernCall(gw.url, 'ask', { kind: 'elicitation' }, { caps });
    const ir = first.json.result;
    assert.equal(ir.resultType, 'input_required', first.text);
    assert.deepEqual(Object.keys(ir.inputRequests), ['q0']);
    assert.match(ir.requestState, /^ghs1\./);
    assert.ok(!ir.requestState.includes('mini.'), 'the server state is not readable through the gateway');
    const more = { requestState: ir.requestState, inputResponses: { q0: { action: 'accept', content: { name: 'eve' } } } };
    const done = await modernCall(gw.url, 'ask', { kind: 'elicitation' }, { id: 2, caps, more });
    assert.equal(done.json.result.resultType, 'complete', done.text);
    assert.equal(done.json.result.content[0].text, '{"action":"accept","content":{"name":"eve"}}');
    // One character of the sealed part changed (never the last ones, which may end in bits the
    // decoder ignores or already read 'AA': the test must always alter the bytes).
    const rs = ir.requestState;
    const altered = rs.slice(0, 10) + (rs[10] === 'A' ? 'B' : 'A') + rs.slice(11);
    const tampered = await modernCall(gw.url, 'ask', {}, { id: 3, caps, more: { ...more, requestState: altered } });
    assertRpcError(tampered, { code: -32602, message: /requestState is not valid for this tools\/call/ });
    const other = await modernCall(gw.url, 'tool', {}, { id: 4, caps, more });
    assertRpcError(other, { code: -32602, message: /issued for another server, name or principal/ });
  });

  test('server/discover of the view: the modern server\'s capabilities, every version of both eras', async () => {
    const body = { jsonrpc: '2.0', id: 1, method: 'server/discover', params: { _meta: meta() } };
    const r = await post(`${gw.url}/m`, body, { version: V, headers: { 'Mcp-Method': 'server/discover' } });
    assert.deepEqual(r.json.result.supportedVersions, [V, '2025-11-25', '2025-06-18', '2025-03-26']);
    assert.deepEqual(Object.keys(r.json.result.capabilities).sort(), ['prompts', 'resources', 'tools']);
  });

  test('list changes arrive through subscriptions/listen', async () => {
    assert.ok(gw.events.some((e) => e.event === 'upstream_stderr' && /listen \{"toolsListChanged":true/.test(e.line)));
    const s = await openSession(gw.url);
    await s.callTool('grow');
    await until(async () => (await s.rpc('tools/list')).json.result.tools.some((t) => t.name === 'grown-1'), { what: 'grown-1 listed' });
  });

  test('cancellation: a legacy client\'s notifications/cancelled reaches the server', async () => {
    const s = await openSession(gw.url);
    const call = s.callTool('hang', {}, { id: 'h1', timeout: 5000 }).catch(() => null);
    await new Promise((r) => setTimeout(r, 300));
    await s.raw({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'h1' } });
    await until(() => gw.events.some((e) => e.event === 'upstream_stderr' && /got notifications\/cancelled/.test(e.line) && /cancelled by the client/.test(e.line)), { what: 'cancel upstream' });
    await until(() => gw.events.some((e) => e.event === 'upstream_stderr' && /closed hang/.test(e.line)), { what: 'fixture saw it' });
    void call;
  });

  test('a modern server that dies mid-call: the call fails naming it, the session survives', async () => {
    const s = await openSession(gw.url);
    const r = await s.callTool('die');
    assertRpcError(r, { code: -32001, message: /server "m" went away/ });
    await until(async () => (await s.callTool('tool', { text: 'back' })).json?.result?.content?.[0]?.text === 'm:back', { timeout: 10000, what: 'restarted' });
    assert.ok(gw.events.filter((e) => e.event === 'upstream_era' && /server m speaks 2026-07-28/.test(e.msg)).length >= 2, 'probed again after the restart');
  });
});

describe('a modern HTTP server behind the gateway', () => {
  let gw;
  let up;
  before(async () => {
    up = await modernHttp('h');
    gw = await startGateway(baseConfig({ limits: { shutdown_grace: '5s', sse_keepalive: '1s' }, servers: [{ name: 'h', url: up.url }] }));
  });
  after(async () => {
    if (gw) await gw.stop();
    up?.kill();
  });

  test('mirror headers (the fixture refuses a mismatch), base64 Mcp-Name, no session header', async () => {
    await until(() => gw.events.some((e) => e.event === 'upstream_era' && /server h speaks 2026-07-28/.test(e.msg)), { what: 'probe' });
    const s = await openSession(gw.url);
    assert.equal((await s.callTool('tool', { text: 'y' })).json.result.content[0].text, 'h:y');
    assert.equal((await s.callTool('ünïcode')).json?.result?.content?.[0]?.text, 'unicode ok');
    assert.equal((await s.rpc('resources/read', { uri: 'mini://hello' })).json.result.contents[0].text, 'hello from h');
    assert.equal((await s.rpc('prompts/get', { name: 'greet' })).json.result.messages[0].content.text, 'hello you from h');
    assert.ok(!/Mcp-Session-Id/.test(up.stderr()), up.stderr());
  });

  test('Mcp-Param-* headers: the gateway adds them from the arguments, base64 when not plain ASCII', async () => {
    const b64 = (s) => `=?base64?${Buffer.from(s).toString('base64')}?=`;
    const got = (r) => JSON.parse(r.json?.result?.content?.[0]?.text ?? 'null');
    // A legacy client sends no Mcp-Param-* header: the fixture refuses a call without them, so
    // these answers prove the gateway added them, one per x-mcp-header argument with a value.
    const s = await openSession(gw.url);
    const plain = await s.callTool('params', { region: 'us-west1', priority: 3, opts: { dry: true }, note: 'n' });
    assert.deepEqual(got(plain), { 'mcp-param-region': 'us-west1', 'mcp-param-priority': '3', 'mcp-param-dry-run': 'true' }, plain.text);
    const some = await s.callTool('params', { region: 'Zürich' });
    assert.deepEqual(got(some), { 'mcp-param-region': b64('Zürich') }, some.text);
    assert.deepEqual(got(await s.callTool('params', { region: ' padded ' })), { 'mcp-param-region': b64(' padded ') });
    assert.deepEqual(got(await s.callTool('params', {})), {});
    // A 2026-07-28 client sends its own (checked by the gateway); the server gets the gateway's.
    const args = { region: 'Zürich', priority: 7 };
    const body = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'params', arguments: args, _meta: meta() } };
    const headers = { 'Mcp-Method': 'tools/call', 'Mcp-Name': 'params', 'Mcp-Param-Region': b64('Zürich'), 'Mcp-Param-Priority': '7' };
    const modern = await post(gw.url, body, { version: V, headers });
    assert.deepEqual(got(modern), { 'mcp-param-region': b64('Zürich'), 'mcp-param-priority': '7' }, modern.text);
    assert.equal(modern.json.result.resultType, 'complete');
    const noPriority = Object.fromEntries(Object.entries(headers).filter(([h]) => h !== 'Mcp-Param-Priority'));
    const missing = await post(gw.url, body, { version: V, headers: noPriority });
    assertRpcError(missing, { code: -32020, message: /Mcp-Param-Priority header is missing/ });
  });

  test('legacy client bridged over HTTP; modern client passes through', async () => {
    const sid = await legacySession(gw.url, { sampling: {} });
    const f = final(await streamCall(gw.url, sid, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'ask', arguments: { times: 2 } } }, () => ({ role: 'assistant', content: { type: 'text', text: 'ok' }, model: 'm' })));
    assert.match(f.result.content[0].text, /"ok".*\|.*"ok"/);
    const first = await modernCall(gw.url, 'ask', {}, { caps: { sampling: {} } });
    const more = { requestState: first.json.result.requestState, inputResponses: { q0: { role: 'assistant', content: { type: 'text', text: 'z' }, model: 'm' } } };
    const done = await modernCall(gw.url, 'ask', {}, { id: 2, caps: { sampling: {} }, more });
    assert.match(done.json.result.content[0].text, /"z"/);
  });

  test('cancellation closes the server\'s response stream (no notifications/cancelled over HTTP)', async () => {
    const s = await openSession(gw.url);
    s.callTool('hang', {}, { id: 'h2', timeout: 5000 }).catch(() => null);
    await new Promise((r) => setTimeout(r, 300));
    await s.raw({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'h2' } });
    await until(() => /closed hang/.test(up.stderr()), { what: 'stream closed upstream' });
    assert.ok(!/got notifications\/cancelled/.test(up.stderr()), up.stderr());
  });

  test('list changes through subscriptions/listen over HTTP', async () => {
    await until(() => /listen \{"toolsListChanged":true/.test(up.stderr()), { what: 'listen upstream' });
    const s = await openSession(gw.url);
    await s.callTool('grow');
    await until(async () => (await s.rpc('tools/list')).json.result.tools.some((t) => t.name === 'grown-1'), { what: 'grown-1 listed' });
  });
});
