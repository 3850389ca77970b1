// Upstream sessions per user (`sessions: per_user`): with auth on, each user gets their own
// upstream session of the server (stdio: their own child process; HTTP: their own
// Mcp-Session-Id and initialize), opened at their first call, closed when idle, bounded by
// user_sessions.max. The upstream itself proves it: the fixture's `whoami` tool answers with its
// process id and the Mcp-Session-Id it saw. What one user's session sends (resource updates,
// list changes) reaches that user's GET stream and never the other's; logging/setLevel reaches
// only the sender's session. Without authentication a per_user server has its one shared session.

import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import { baseConfig, miniHttp, miniServer, openSession, readyz, sleep, startGateway, until } from './lib.mjs';
import { createUserClient, mcpCall, mcpInit, startAuthGateway, token } from './oauth_lib.mjs';

/** A stdio server of the mini fixture with the whoami, grow and fault tools. */
function perUser(name, extra = {}) {
  const m = miniServer(name);
  return { ...m, args: [...m.args, '--whoami', '--grow-tools', '--fault-tools'], sessions: 'per_user', ...extra };
}

async function login(gw, user) {
  const { id, secret } = createUserClient(gw.configFile, user);
  const r = await token(gw, { grant_type: 'client_credentials', resource: `${gw.base}/mcp` }, { basic: [id, secret] });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const tok = r.json.access_token;
  const init = await mcpInit(gw.url, tok);
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
  const rz = await readyz(gw);
  assert.equal(rz.body.servers.p.sessions, 'per_user', rz.text);
  assert.equal(rz.body.servers.p.user_sessions, 2, rz.text);

  // logging/setLevel reaches the sender's own process only.
  await alice.call('logging/setLevel', { level: 'warning' });
  await until(async () => (await alice.who()).level === 'warning', { what: "alice's level" });
  assert.equal((await bob.who()).level, null, "bob's process got alice's level");

  // Notifications from alice's process reach alice's GET stream, never bob's.
  const sa = listen(gw, alice);
  const sb = listen(gw, bob);
  t.after(() => (sa.close(), sb.close()));
  await sleep(200);
  assert.ok((await alice.call('resources/subscribe', { uri: 'mini://hello' })).result);
  assert.ok((await bob.call('resources/subscribe', { uri: 'mini://hello' })).result);
  assert.equal((await alice.tool('touch')).result.content[0].text, 'touched');
  await until(() => sa.text.includes('notifications/resources/updated'), { what: "alice's resources/updated" });
  assert.equal((await alice.tool('grow')).result.content[0].text, 'grown-1');
  await until(() => sa.text.includes('notifications/tools/list_changed'), { what: "alice's list_changed" });
  await sleep(300);
  assert.ok(!sb.text.includes('notifications/resources/updated'), `bob heard alice's update: ${sb.text}`);
  assert.ok(!sb.text.includes('list_changed'), `bob heard alice's list change: ${sb.text}`);
  // ...and bob's own do reach bob.
  assert.equal((await bob.tool('touch')).result.content[0].text, 'touched');
  await until(() => sb.text.includes('notifications/resources/updated'), { what: "bob's resources/updated" });
});

test('HTTP per_user: an Mcp-Session-Id per user, each re-initialised after a 404', async (t) => {
  const fx = await miniHttp(['--whoami', '--fault-tools', '--label', 'h']);
  t.after(() => fx.kill());
  const gw = await startAuthGateway(t, { extra: { servers: [{ name: 'h', url: fx.url, sessions: 'per_user' }] } });
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
});

test('per_user: an idle session is closed, and user_sessions.max is a clear refusal', async (t) => {
  const gw = await startAuthGateway(t, { extra: { servers: [perUser('p', { user_sessions: { idle_timeout: '1s', max: 1 } })] } });
  const alice = await login(gw, 'alice');
  const bob = await login(gw, 'bob');
  const a1 = await alice.who();
  const refused = await bob.tool('whoami');
  assert.equal(refused.error?.code, -32003, JSON.stringify(refused));
  assert.match(refused.error.message, /server "p" has 1 user sessions open, its limit \(user_sessions\.max 1\)/);
  assert.equal(refused.error.data?.server, 'p');
  // Alice's session closes after 1 s without calls: its process ends, and bob gets a place.
  await until(() => !alive(a1.pid), { timeout: 5000, what: "alice's idle process to end" });
  await until(async () => (await readyz(gw)).body.servers.p.user_sessions === 0, { what: 'no user session open' });
  const b1 = await bob.who();
  assert.notEqual(b1.pid, a1.pid);
  // A session with a call in flight is not idle, however long the call.
  assert.equal((await bob.tool('sleep', { ms: 2200 })).result.content[0].text, 'slept 2200');
  assert.equal((await bob.who()).pid, b1.pid, "bob's session was closed during his call");
  assert.match(gw.tail(), /upstream_user_session_closed/);
});

test('per_user without authentication: every caller shares the server session', async (t) => {
  const gw = await startGateway(baseConfig({ servers: [perUser('p')] }), { t });
  const one = await openSession(gw.url);
  const two = await openSession(gw.url);
  const pid = async (s) => JSON.parse((await s.callTool('whoami')).json.result.content[0].text).pid;
  assert.equal(await pid(one), await pid(two));
  assert.equal((await readyz(gw)).body.servers.p.user_sessions, 0);
});
