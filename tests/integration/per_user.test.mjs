// Upstream sessions per user (`sessions: per_user`): with auth on, each user gets their own
// upstream session of the server (stdio: their own child process; HTTP: their own
// Mcp-Session-Id and initialize), opened at their first call, closed when idle, bounded by
// user_sessions.max. The upstream itself proves it: the fixture's `whoami` tool answers with its
// process id and the Mcp-Session-Id it saw. What one user's session sends (resource updates,
// list changes) reaches that user's GET stream and never the other's; logging/setLevel reaches
// only the sender's session. Without authentication a per_user server has its one shared session.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { test } from 'node:test';
import { baseConfig, miniHttp, miniServer, openSession, post, readyz, request, sleep, startGateway, until } from './lib.mjs';
import { createUserClient, mcpCall, startAuthGateway, token } from './oauth_lib.mjs';

/** A stdio server of the mini fixture with the whoami, grow, fault and era tools. */
function perUser(name, extra = {}) {
  const m = miniServer(name);
  return { ...m, args: [...m.args, '--whoami', '--grow-tools', '--fault-tools', '--era-tools'], sessions: 'per_user', ...extra };
}

async function login(gw, user) {
  const { id, secret } = createUserClient(gw.configFile, user);
  const r = await token(gw, { grant_type: 'client_credentials', resource: `${gw.base}/mcp` }, { basic: [id, secret] });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return connect(gw, r.json.access_token, user);
}

/** A session of the bearer of `tok` (an access token or an API key), with call helpers. */
async function connect(gw, tok, user) {
  const init = await post(
    gw.url,
    { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: { sampling: {} }, clientInfo: { name: 'per-user-test', version: '1' } } },
    { version: null, headers: { Authorization: `Bearer ${tok}` } },
  );
  assert.equal(init.status, 200, init.text);
  const sid = init.headers['mcp-session-id'];
  await mcpCall(gw.url, tok, sid, 'notifications/initialized');
  const call = async (method, params) => {
    const res = await mcpCall(gw.url, tok, sid, method, params);
    assert.equal(res.status, 200, res.text);
    return res.json;
  };
  const tool = async (name, args = {}) => call('tools/call', { name, arguments: args });
  const who = async () => {
    const r = await tool('whoami');
    assert.ok(r.result, `whoami: ${JSON.stringify(r)}`);
    return JSON.parse(r.result.content[0].text);
  };
  return { user, tok, sid, call, tool, who };
}

/**
 * tools/call `name` on u's session, read as it streams: each request the server sends during it
 * is answered with answer(request) on u's session. Resolves the call's final answer.
 */
function streamCall(gw, u, name, args, answer) {
  const body = JSON.stringify({ jsonrpc: '2.0', id: 'sc', method: 'tools/call', params: { name, arguments: args } });
  return new Promise((resolve, reject) => {
    const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': u.sid, 'mcp-protocol-version': '2025-11-25', authorization: `Bearer ${u.tok}` };
    const req = http.request(gw.url, { method: 'POST', headers }, (res) => {
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (c) => {
        buf += c;
        for (let i; (i = buf.indexOf('\n\n')) >= 0; ) {
          const data = buf
            .slice(0, i)
            .split('\n')
            .filter((l) => l.startsWith('data: '))
            .map((l) => l.slice(6))
            .join('\n');
          buf = buf.slice(i + 2);
          if (!data) continue;
          const msg = JSON.parse(data);
          if (msg.method !== undefined && msg.id !== undefined)
            post(gw.url, { jsonrpc: '2.0', id: msg.id, result: answer(msg) }, { session: u.sid, headers: { Authorization: `Bearer ${u.tok}` } }).catch(reject);
          else if (msg.id === 'sc') {
            resolve(msg);
            req.destroy();
          }
        }
      });
    });
    req.on('error', (e) => (e.code === 'ECONNRESET' ? undefined : reject(e)));
    req.end(body);
  });
}

/** A 2026-07-28 (stateless) tools/call by u; `more` adds params (inputResponses, requestState). */
function modernCall(gw, u, name, args, { id = 1, more = {} } = {}) {
  const _meta = {
    'io.modelcontextprotocol/protocolVersion': '2026-07-28',
    'io.modelcontextprotocol/clientInfo': { name: 't', version: '1' },
    'io.modelcontextprotocol/clientCapabilities': { sampling: {} },
  };
  return post(
    gw.url,
    { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args, ...more, _meta } },
    { version: '2026-07-28', headers: { 'Mcp-Method': 'tools/call', 'Mcp-Name': name, Authorization: `Bearer ${u.tok}` } },
  );
}

/** A 2026-07-28 subscriptions/listen stream of u for tool list changes; `.text` grows. */
function listenModern(gw, u) {
  const _meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientInfo': { name: 't', version: '1' }, 'io.modelcontextprotocol/clientCapabilities': {} };
  const body = JSON.stringify({ jsonrpc: '2.0', id: 'l', method: 'subscriptions/listen', params: { notifications: { toolsListChanged: true }, _meta } });
  const s = { text: '' };
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'subscriptions/listen', authorization: `Bearer ${u.tok}` };
  const req = http.request(gw.url, { method: 'POST', headers }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (c) => (s.text += c));
  });
  req.on('error', () => {});
  req.end(body);
  s.close = () => req.destroy();
  return s;
}

/** The session's GET stream; `.text` grows as events arrive. */
function listen(gw, u) {
  const s = { text: '' };
  const req = http.get(gw.url, { headers: { accept: 'text/event-stream', 'mcp-session-id': u.sid, 'mcp-protocol-version': '2025-11-25', authorization: `Bearer ${u.tok}` } }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (c) => (s.text += c));
  });
  req.on('error', () => {});
  s.close = () => req.destroy();
  return s;
}

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('stdio per_user: a child process per user; their notifications and log level stay theirs', async (t) => {
  const gw = await startAuthGateway(t, { extra: { servers: [perUser('p')] } });
  const alice = await login(gw, 'alice');
  const bob = await login(gw, 'bob');
  const a1 = await alice.who();
  const b1 = await bob.who();
  assert.notEqual(a1.pid, b1.pid, 'two users, two processes');
  assert.ok(alive(a1.pid) && alive(b1.pid));
  assert.equal((await alice.who()).pid, a1.pid, "alice's calls stay in alice's process");
  const alice2 = await login(gw, 'alice'); // another client session of the same user
  assert.equal((await alice2.who()).pid, a1.pid, "a user's sessions share the user's process");
  // A service account (an API key) is a principal of its own.
  gw.cli(['account', 'add', 'ci-bot']);
  const bot = await connect(gw, gw.cli(['apikey', 'create', '--account', 'ci-bot', '--label', 't']), 'ci-bot');
  const c1 = await bot.who();
  assert.ok(c1.pid !== a1.pid && c1.pid !== b1.pid, 'the service account has its own process');
  const rz = await readyz(gw);
  assert.equal(rz.body.servers.p.sessions, 'per_user', rz.text);
  assert.equal(rz.body.servers.p.user_sessions, 3, rz.text);

  // logging/setLevel reaches the sender's own process only.
  await alice.call('logging/setLevel', { level: 'warning' });
  await until(async () => (await alice.who()).level === 'warning', { what: "alice's level" });
  assert.equal((await bob.who()).level, null, "bob's process got alice's level");

  // Notifications from alice's process reach alice's GET stream, never bob's.
  const sa = listen(gw, alice);
  const sb = listen(gw, bob);
  const la = listenModern(gw, alice); // 2026-07-28 clients of the same users
  const lb = listenModern(gw, bob);
  t.after(() => (sa.close(), sb.close(), la.close(), lb.close()));
  await until(() => la.text.includes('acknowledged') && lb.text.includes('acknowledged'), { what: 'listen streams' });
  await sleep(200);
  assert.ok((await alice.call('resources/subscribe', { uri: 'mini://hello' })).result);
  assert.ok((await bob.call('resources/subscribe', { uri: 'mini://hello' })).result);
  assert.equal((await alice.tool('touch')).result.content[0].text, 'touched');
  await until(() => sa.text.includes('notifications/resources/updated'), { what: "alice's resources/updated" });
  assert.equal((await alice.tool('grow')).result.content[0].text, 'grown-1');
  await until(() => sa.text.includes('notifications/tools/list_changed'), { what: "alice's list_changed" });
  await until(() => la.text.includes('notifications/tools/list_changed'), { what: "alice's list_changed on her listen stream" });
  await sleep(300);
  assert.ok(!lb.text.includes('list_changed'), `bob's listen stream heard alice's list change: ${lb.text}`);
  assert.ok(!sb.text.includes('notifications/resources/updated'), `bob heard alice's update: ${sb.text}`);
  assert.ok(!sb.text.includes('list_changed'), `bob heard alice's list change: ${sb.text}`);
  // ...and bob's own do reach bob.
  assert.equal((await bob.tool('touch')).result.content[0].text, 'touched');
  await until(() => sb.text.includes('notifications/resources/updated'), { what: "bob's resources/updated" });
  // Stopping the gateway ends every user's process.
  await gw.stop();
  await until(() => !alive(a1.pid) && !alive(b1.pid) && !alive(c1.pid), { what: "the users' processes to end" });
});

test("per_user: a server's requests go to its user, whose answers go back to that user's session", async (t) => {
  const gw = await startAuthGateway(t, { extra: { servers: [perUser('p')] } });
  const alice = await login(gw, 'alice');
  const bob = await login(gw, 'bob');
  const a1 = await alice.who();
  const b1 = await bob.who();
  // A legacy client: the sampling request comes on alice's call stream; her answer reaches her
  // own process, which completes the call with it.
  const final = await streamCall(gw, alice, 'ask', {}, (req) => {
    assert.equal(req.method, 'sampling/createMessage');
    return { role: 'assistant', content: { type: 'text', text: 'for alice' }, model: 'm' };
  });
  assert.match(final.result?.content?.[0]?.text ?? JSON.stringify(final), /for alice/);
  // A 2026-07-28 client of the same user: the same process, and its multi round-trip call
  // (parked, then resumed by the retry) completes there too.
  const w = await modernCall(gw, alice, 'whoami', {}, { id: 'w' });
  assert.equal(JSON.parse(w.json.result.content[0].text).pid, a1.pid, w.text);
  const first = await modernCall(gw, alice, 'ask', {}, { id: 'm1' });
  assert.equal(first.json?.result?.resultType, 'input_required', first.text);
  const [key] = Object.keys(first.json.result.inputRequests);
  const answer = { role: 'assistant', content: { type: 'text', text: 'modern alice' }, model: 'm' };
  // Bob cannot resume alice's call with her requestState.
  const stolen = await modernCall(gw, bob, 'ask', {}, { id: 'm2', more: { inputResponses: { [key]: answer }, requestState: first.json.result.requestState } });
  assert.equal(stolen.json?.error?.code, -32602, stolen.text);
  assert.match(stolen.json.error.message, /requestState was issued for another request or another principal/);
  const done = await modernCall(gw, alice, 'ask', {}, { id: 'm3', more: { inputResponses: { [key]: answer }, requestState: first.json.result.requestState } });
  assert.match(done.json?.result?.content?.[0]?.text ?? done.text, /modern alice/);
  // A child that dies is restarted for its user (back-off, as for a shared server); bob's stays.
  const died = await alice.tool('die');
  assert.ok(died.error, JSON.stringify(died));
  const a2 = await alice.who();
  assert.notEqual(a2.pid, a1.pid);
  assert.equal((await bob.who()).pid, b1.pid);
  await gw.stop();
});

test('per_user with a 2026-07-28 stdio server: a process and a listen stream per user', async (t) => {
  const gw = await startAuthGateway(t, { extra: { servers: [perUser('p', { args: [...perUser('p').args, '--modern'] })] } });
  const alice = await login(gw, 'alice');
  const bob = await login(gw, 'bob');
  const a1 = await alice.who();
  const b1 = await bob.who();
  assert.notEqual(a1.pid, b1.pid);
  const sa = listen(gw, alice);
  const sb = listen(gw, bob);
  t.after(() => (sa.close(), sb.close()));
  await sleep(200);
  assert.ok((await alice.call('resources/subscribe', { uri: 'mini://hello' })).result);
  assert.ok((await bob.call('resources/subscribe', { uri: 'mini://hello' })).result);
  // Each process has one listen stream, its user's, whose filter carries that user's subscription.
  await until(async () => (await alice.tool('touch')).result.content[0].text === 'touched 1', { what: "alice's listen filter" });
  await until(() => sa.text.includes('notifications/resources/updated'), { what: "alice's resources/updated" });
  await sleep(300);
  assert.ok(!sb.text.includes('notifications/resources/updated'), `bob heard alice's update: ${sb.text}`);
  await gw.stop();
});

test('HTTP per_user: an Mcp-Session-Id per user, each re-initialised after a 404 and deleted when idle', async (t) => {
  const fx = await miniHttp(['--whoami', '--fault-tools', '--label', 'h']);
  t.after(() => fx.kill());
  const gw = await startAuthGateway(t, { extra: { servers: [{ name: 'h', url: fx.url, sessions: 'per_user', user_sessions: { idle_timeout: '1500ms' } }] } });
  const alice = await login(gw, 'alice');
  const bob = await login(gw, 'bob');
  const a1 = await alice.who();
  const b1 = await bob.who();
  assert.equal(a1.pid, b1.pid, 'one server process');
  assert.ok(a1.session && b1.session, JSON.stringify([a1, b1]));
  assert.notEqual(a1.session, b1.session, 'two users, two upstream sessions');
  assert.equal((await alice.who()).session, a1.session);
  // The server forgets every session: each user's session is re-initialised on its own.
  assert.equal((await alice.tool('forget')).result.content[0].text, 'forgotten');
  const a2 = await alice.who();
  const b2 = await bob.who();
  assert.ok(a2.session && b2.session);
  assert.notEqual(a2.session, a1.session);
  assert.notEqual(b2.session, b1.session);
  assert.notEqual(a2.session, b2.session);
  assert.match(fx.stderr(), /404 for session/);
  // Idle, each user's session is deleted upstream.
  await until(() => fx.stderr().includes(`DELETE session ${a2.session}`) && fx.stderr().includes(`DELETE session ${b2.session}`), { what: 'the idle sessions deleted' });
  await gw.stop();
});

test('per_user: an idle session is closed, and user_sessions.max is a clear refusal', async (t) => {
  const gw = await startAuthGateway(t, { extra: { servers: [perUser('p', { user_sessions: { idle_timeout: '2s', max: 1 } })] } });
  const alice = await login(gw, 'alice');
  const bob = await login(gw, 'bob');
  const a1 = await alice.who();
  const refused = await bob.tool('whoami');
  assert.equal(refused.error?.code, -32003, JSON.stringify(refused));
  assert.match(refused.error.message, /server "p" has 1 user sessions open, its limit \(user_sessions\.max 1\)/);
  assert.equal(refused.error.data?.server, 'p');
  const metrics = async () => (await request(`${gw.base}/metrics`)).text;
  let m = await metrics();
  assert.match(m, /^gatehouse_upstream_user_sessions\{server="p"\} 1$/m, m);
  assert.match(m, /^gatehouse_upstream_user_sessions_refused_total\{server="p"\} 1$/m, m);
  // Alice's session closes after 2 s without calls: its process ends, and bob gets a place.
  await until(() => !alive(a1.pid), { timeout: 5000, what: "alice's idle process to end" });
  await until(async () => (await readyz(gw)).body.servers.p.user_sessions === 0, { what: 'no user session open' });
  m = await metrics();
  assert.match(m, /^gatehouse_upstream_user_sessions\{server="p"\} 0$/m, m);
  const b1 = await bob.who();
  assert.notEqual(b1.pid, a1.pid);
  // A session with a call in flight is not idle, however long the call.
  assert.equal((await bob.tool('sleep', { ms: 3000 })).result.content[0].text, 'slept 3000');
  assert.equal((await bob.who()).pid, b1.pid, "bob's session was closed during his call");
  assert.match(gw.tail(), /upstream_user_session_closed/);
  await gw.stop();
});

test("per_user: a reload that changes the server closes its users' sessions", async (t) => {
  const gw = await startAuthGateway(t, { extra: { servers: [perUser('p')] } });
  const alice = await login(gw, 'alice');
  const a1 = await alice.who();
  const cfg = JSON.parse(fs.readFileSync(gw.configFile, 'utf8'));
  cfg.servers[0].user_sessions = { max: 5 };
  fs.writeFileSync(gw.configFile, JSON.stringify(cfg, null, 2));
  const mark = gw.events.length;
  gw.signal('SIGHUP');
  const done = await gw.waitForEvent((e) => e.event === 'reload_servers', { from: mark, what: 'the reload' });
  assert.match(done.msg, /0 kept, 1 started, 1 stopped/);
  await until(() => !alive(a1.pid), { what: "alice's process of the old server to end" });
  await until(async () => (await readyz(gw)).body.servers.p?.state === 'ready', { timeout: 10000, what: 'the new server' });
  const a2 = await alice.who();
  assert.notEqual(a2.pid, a1.pid);
  assert.equal((await readyz(gw)).body.servers.p.user_sessions_max, 5);
  await gw.stop();
});

test('per_user without authentication: every caller shares the server session', async (t) => {
  const gw = await startGateway(baseConfig({ servers: [perUser('p')] }), { t });
  const one = await openSession(gw.url);
  const two = await openSession(gw.url);
  const pid = async (s) => JSON.parse((await s.callTool('whoami')).json.result.content[0].text).pid;
  assert.equal(await pid(one), await pid(two));
  assert.equal((await readyz(gw)).body.servers.p.user_sessions, 0);
  await gw.stop();
});
