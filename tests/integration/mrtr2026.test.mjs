// MRTR bridging: a legacy server's sampling/elicitation/roots request during a 2026-07-28 client's
// call becomes an InputRequiredResult; the client's retry (inputResponses + requestState) answers
// the server under its own ids and receives the call's progress and final result. Also: repeated
// input requests, unknown / mismatched / expired requestState (limits.mrtr_ttl), a missing client
// capability (-32021, the call cancelled upstream; in a round that also asks for declared ones,
// the undeclared request is refused to the server instead), the caller's capabilities in the
// _meta of its call, the retry owning the call (closing its stream cancels upstream), and legacy
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
      // sse_keepalive: a hung-up response is noticed at the next write.
      limits: { shutdown_grace: '5s', mrtr_ttl: '1s', sse_keepalive: '1s' },
      servers: [{ name: 'a', command: process.execPath, args: [MINI, '--label', 'a', '--era-tools'] }],
    }),
  );
});
after(async () => {
  if (gw) await gw.stop();
});

const meta = (caps, extra = {}) => ({
  'io.modelcontextprotocol/protocolVersion': V,
  'io.modelcontextprotocol/clientInfo': { name: 't', version: '1' },
  'io.modelcontextprotocol/clientCapabilities': caps,
  ...extra,
});

function call(name, args, { id = 1, caps = {}, extra = {}, more = {} } = {}) {
  const body = { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args, ...more, _meta: meta(caps, extra) } };
  return post(gw.url, body, { version: V, headers: { 'Mcp-Method': 'tools/call', 'Mcp-Name': name } });
}

/** Asserts an InputRequiredResult and returns [key, request] pairs and the requestState. */
function inputRequired(r, id) {
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.id, id, r.text);
  const res = r.json.result;
  assert.ok(res, r.text);
  assert.equal(res.resultType, 'input_required', r.text);
  assert.equal(typeof res.requestState, 'string');
  assert.match(res.requestState, /^[A-Za-z0-9_-]{43}$/);
  return { inputs: Object.entries(res.inputRequests), state: res.requestState };
}

const messages = (r) =>
  r.text
    .split('\n')
    .filter((l) => l.startsWith('data: {'))
    .map((l) => JSON.parse(l.slice(6)));

test('elicitation: InputRequiredResult, the retry answers the server and gets progress and the final result', async () => {
  const caps = { elicitation: {} };
  // The server sees the first request's progressToken (as the gateway's); its progress after the
  // answer goes to the retry, under the retry's token.
  const first = inputRequired(await call('ask', { kind: 'elicitation' }, { id: 'e1', caps, extra: { progressToken: 'pt0' } }), 'e1');
  assert.equal(first.inputs.length, 1);
  const [key, req] = first.inputs[0];
  assert.equal(req.method, 'elicitation/create');
  assert.equal(req.params.mode, 'form');
  assert.equal(req.params.message, 'question 1');
  assert.deepEqual(req.params.requestedSchema, { type: 'object', properties: { name: { type: 'string' } } });
  const answer = { action: 'accept', content: { name: 'octocat' } };
  const r = await call('ask', { kind: 'elicitation' }, { id: 'e2', caps, extra: { progressToken: 'pt' }, more: { inputResponses: { [key]: answer }, requestState: first.state } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { jsonrpc: '2.0', id: 'e2', result: { content: [{ type: 'text', text: JSON.stringify(answer) }], resultType: 'complete' } });
  const progress = messages(r).filter((m) => m.method === 'notifications/progress');
  assert.deepEqual(progress.map((m) => [m.params.progressToken, m.params.progress]), [['pt', 1]]);
  // Each requestState serves one retry.
  assertRpcError(await call('ask', { kind: 'elicitation' }, { id: 'e3', caps, more: { inputResponses: { [key]: answer }, requestState: first.state } }), {
    status: 200,
    code: -32602,
    message: [/requestState is unknown or expired/],
    id: 'e3',
  });
});

test('sampling: the round trip, the server sees the client result under its own id', async () => {
  const caps = { sampling: {} };
  const first = inputRequired(await call('ask', {}, { id: 7, caps }), 7);
  const [key, req] = first.inputs[0];
  assert.equal(req.method, 'sampling/createMessage');
  assert.match(key, /^ask-\d+-0$/, 'keyed by the server\'s own (string) request id');
  assert.deepEqual(req.params, { messages: [], maxTokens: 5 });
  const answer = { role: 'assistant', content: { type: 'text', text: 'Paris' }, model: 'm', stopReason: 'endTurn' };
  const r = await call('ask', {}, { id: 8, caps, more: { inputResponses: { [key]: answer }, requestState: first.state } });
  assert.equal(r.json.id, 8);
  assert.equal(r.json.result.content[0].text, JSON.stringify(answer));
  assert.equal(r.json.result.resultType, 'complete');
});

test('repeated input requests: another InputRequiredResult per round, a new requestState each time', async () => {
  const caps = { roots: {} };
  let round = inputRequired(await call('ask', { kind: 'roots', times: 3 }, { id: 'r0', caps }), 'r0');
  const states = new Set([round.state]);
  const seen = [];
  let r;
  for (let i = 1; i <= 3; i++) {
    const [key, req] = round.inputs[0];
    assert.equal(req.method, 'roots/list');
    seen.push(key);
    r = await call('ask', { kind: 'roots', times: 3 }, { id: `r${i}`, caps, more: { inputResponses: { [key]: { roots: [{ uri: `file:///r${i}` }] } }, requestState: round.state } });
    if (i < 3) {
      round = inputRequired(r, `r${i}`);
      states.add(round.state);
    }
  }
  assert.equal(states.size, 3);
  assert.equal(new Set(seen).size, 3, 'keys are unique within the call');
  assert.equal(r.json.id, 'r3');
  assert.equal(r.json.result.content[0].text, [1, 2, 3].map((i) => JSON.stringify({ roots: [{ uri: `file:///r${i}` }] })).join(' | '));
});

test('a retry without the answer is asked again', async () => {
  const caps = { sampling: {} };
  const first = inputRequired(await call('ask', {}, { id: 'm1', caps }), 'm1');
  const again = inputRequired(await call('ask', {}, { id: 'm2', caps, more: { inputResponses: {}, requestState: first.state } }), 'm2');
  assert.deepEqual(again.inputs, first.inputs);
  assert.notEqual(again.state, first.state);
  const r = await call('ask', {}, { id: 'm3', caps, more: { inputResponses: { [first.inputs[0][0]]: { role: 'assistant', content: { type: 'text', text: 'x' }, model: 'm' } }, requestState: again.state } });
  assert.match(r.json.result.content[0].text, /"text":"x"/);
});

test('unknown, malformed and mismatched requestState are -32602 naming requestState', async () => {
  const caps = { sampling: {} };
  assertRpcError(await call('ask', {}, { id: 'u1', caps, more: { inputResponses: {}, requestState: 'A'.repeat(43) } }), { status: 200, code: -32602, message: [/params.requestState is unknown or expired/], id: 'u1' });
  assertRpcError(await call('ask', {}, { id: 'u2', caps, more: { requestState: 42 } }), { code: -32602, message: [/params.requestState must be the string the gateway issued/] });
  const first = inputRequired(await call('ask', {}, { id: 'u3', caps }), 'u3');
  assertRpcError(await call('ask', {}, { id: 'u4', caps, more: { inputResponses: [], requestState: first.state } }), { code: -32602, message: [/params.inputResponses must be an object/] });
  // Presented on another request: refused, and the state still serves the right retry.
  assertRpcError(await call('tool', { text: 'x' }, { id: 'u5', caps, more: { requestState: first.state } }), { code: -32602, message: [/requestState was issued for another request/] });
  const r = await call('ask', {}, { id: 'u6', caps, more: { inputResponses: { [first.inputs[0][0]]: { role: 'assistant', content: { type: 'text', text: 'ok' }, model: 'm' } }, requestState: first.state } });
  assert.match(r.json.result.content[0].text, /"text":"ok"/);
});

test('a parked call whose client never retries is cancelled upstream after limits.mrtr_ttl; its state is then refused', async () => {
  const caps = { elicitation: {} };
  const mark = gw.lines.length;
  const first = inputRequired(await call('ask', { kind: 'elicitation' }, { id: 't1', caps }), 't1');
  await until(() => gw.lines.slice(mark).find((l) => l.includes('mini-server: got notifications/cancelled') && l.includes('did not retry')), {
    timeout: 5000,
    what: `notifications/cancelled upstream after the TTL\n${gw.tail()}`,
  });
  assert.ok(gw.lines.slice(mark).some((l) => l.includes('mrtr_expired')), gw.tail());
  assertRpcError(await call('ask', { kind: 'elicitation' }, { id: 't2', caps, more: { inputResponses: { [first.inputs[0][0]]: { action: 'decline' } }, requestState: first.state } }), {
    code: -32602,
    message: [/requestState is unknown or expired/],
  });
});

test('the retry owns the call: closing its response stream cancels the call upstream', async () => {
  const caps = { sampling: {} };
  const first = inputRequired(await call('ask', { hang: true }, { id: 'h1', caps }), 'h1');
  const mark = gw.lines.length;
  const params = { name: 'ask', arguments: { hang: true }, inputResponses: { [first.inputs[0][0]]: { role: 'assistant', content: { type: 'text', text: 'x' }, model: 'm' } }, requestState: first.state, _meta: meta(caps) };
  const body = JSON.stringify({ jsonrpc: '2.0', id: 'h2', method: 'tools/call', params });
  const u = new URL(gw.url);
  await new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': V, 'mcp-method': 'tools/call', 'mcp-name': 'ask', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        assert.equal(res.statusCode, 200);
        res.once('data', () => {
          req.destroy(); // the retry's stream is open: hang up
          resolve();
        });
      },
    );
    req.on('error', (e) => (e.code === 'ECONNRESET' ? resolve() : reject(e)));
    req.end(body);
  });
  await until(() => gw.lines.slice(mark).find((l) => l.includes('mini-server: got notifications/cancelled') && l.includes('cancelled by the client')), {
    timeout: 5000,
    what: `notifications/cancelled upstream\n${gw.tail()}`,
  });
});

test('a client without the capability gets -32021 naming it, and the call is cancelled upstream', async () => {
  const mark = gw.lines.length;
  const e = assertRpcError(await call('ask', { kind: 'elicitation' }, { id: 'c1', caps: { sampling: {} } }), {
    code: -32021,
    message: [/Missing required client capability: elicitation/],
    id: 'c1',
  });
  assert.deepEqual(e.data.requiredCapabilities, { elicitation: {} });
  await until(() => gw.lines.slice(mark).find((l) => l.includes('mini-server: got notifications/cancelled') && l.includes('lacks a capability')), {
    timeout: 5000,
    what: `notifications/cancelled upstream\n${gw.tail()}`,
  });
});

test("a legacy server gets the caller's capabilities in the call's _meta (those the gateway bridges)", async () => {
  const caps = { sampling: {}, elicitation: { form: {} }, extensions: { 'io.modelcontextprotocol/tasks': {} } };
  const r = await call('meta', {}, { id: 'm1', caps });
  assert.equal(r.status, 200, r.text);
  const seen = JSON.parse(r.json.result.content[0].text);
  // The server learnt the gateway's capabilities at initialize; the caller's are its own.
  assert.deepEqual(seen['io.modelcontextprotocol/clientCapabilities'], { sampling: {}, elicitation: { form: {} } });
  assert.equal(seen['io.modelcontextprotocol/protocolVersion'], undefined);
  // A legacy client's call carries none (its server knows the session's from initialize).
  const s = await openSession(gw.url);
  const l = await s.callTool('meta', {});
  assert.equal(l.status, 200, l.text);
  assert.equal(JSON.parse(l.json.result.content[0].text)?.['io.modelcontextprotocol/clientCapabilities'], undefined);
});

test('one round mixing declared and undeclared capabilities: the undeclared are refused to the server by name, the declared asked', async () => {
  const caps = { sampling: {} };
  const first = inputRequired(await call('ask', { kinds: ['sampling', 'elicitation'] }, { id: 'x1', caps }), 'x1');
  assert.deepEqual(
    first.inputs.map(([, q]) => q.method),
    ['sampling/createMessage'],
  );
  const answer = { role: 'assistant', content: { type: 'text', text: 'hi' }, model: 'm' };
  const r = await call('ask', { kinds: ['sampling', 'elicitation'] }, { id: 'x2', caps, more: { inputResponses: { [first.inputs[0][0]]: answer }, requestState: first.state } });
  assert.equal(r.status, 200, r.text);
  // The server went on without the elicitation, told why.
  assert.deepEqual(r.json.result.content, [
    { type: 'text', text: `${JSON.stringify(answer)} | error -32601: the client did not declare the "elicitation" capability (it is asked for the other requests of this round)` },
  ]);
});

test('one round of undeclared capabilities only: -32021 naming all of them, each refused to the server, the call cancelled', async () => {
  const mark = gw.lines.length;
  const e = assertRpcError(await call('ask', { kinds: ['sampling', 'elicitation'] }, { id: 'u1', caps: {} }), {
    code: -32021,
    message: [/Missing required client capability: sampling, elicitation/],
    id: 'u1',
  });
  assert.deepEqual(e.data.requiredCapabilities, { sampling: {}, elicitation: {} });
  await until(() => gw.lines.slice(mark).find((l) => l.includes('mini-server: got notifications/cancelled') && l.includes('lacks a capability')), {
    timeout: 5000,
    what: `notifications/cancelled upstream\n${gw.tail()}`,
  });
});

test('a roots/list over stdio during a call of a client without roots fails the request, not the call', async () => {
  // stdio cannot say which call a server request belongs to, and servers ask for roots on their
  // own schedule (server-everything, 350 ms after it starts): the call goes on, the server is told.
  const r = await call('ask', { kind: 'roots' }, { id: 'r1', caps: { sampling: {} } });
  assert.equal(r.status, 200, r.text);
  const body = r.json ?? JSON.parse(r.text.split('\n').find((l) => l.startsWith('data: {')).slice(6));
  assert.equal(body.error, undefined, r.text);
  assert.deepEqual(body.result.content, [{ type: 'text', text: 'error -32601: the client did not declare the "roots" capability' }]);
});

test('legacy sessions are unaffected: the server request is refused as before when the capability is missing', async () => {
  const s = await openSession(gw.url);
  const r = await s.callTool('ask', {});
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.result, { content: [{ type: 'text', text: 'error -32601: the client did not declare the "sampling" capability' }] });
  assert.equal(r.json.result.resultType, undefined);
});
