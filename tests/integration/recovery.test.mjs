// Upstream session recovery (docs/architecture.md, "Upstream session recovery"): an stdio server
// killed mid-session, an HTTP server that forgets its sessions (404), one that reports a dead
// session only in prose, one that stalls, and one that stays dead. In every case the client's
// session survives; after a recovery the server has been sent the client's resource subscriptions
// and log level again, a call the server refused for its lost session is sent again, and what
// cannot be recovered is reported with the server's name. Also: a legacy client's subscriptions
// and log level reach a 2026-07-28 server (subscriptions/listen filter, _meta logLevel).

import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import { assertRpcError, baseConfig, miniHttp, miniServer, openSession, PROTOCOL, startGateway, until } from './lib.mjs';

const faulty = (name, extra = {}) => {
  const s = miniServer(name, extra);
  s.args.push('--fault-tools');
  return s;
};
const text = (r) => r.json?.result?.content?.[0]?.text;

const httpFixture = (args) => miniHttp(['--fault-tools', ...args]);

const count = (hay, needle) => hay.split(needle).length - 1;
/** The fixture's stderr lines as the gateway logged them (stdio servers). */
const upstreamLog = (gw) => gw.lines.filter((l) => l.includes('upstream_stderr')).join('\n');

/** Subscribes to mini://hello and sets the log level on session s. */
async function setUp(s) {
  const sub = await s.rpc('resources/subscribe', { uri: 'mini://hello' });
  assert.deepEqual(sub.json?.result, {}, sub.text);
  const lvl = await s.rpc('logging/setLevel', { level: 'warning' });
  assert.deepEqual(lvl.json?.result, {}, lvl.text);
}

test('stdio server killed mid-session: the call in flight fails naming it, the next one waits for the restart; subscriptions and log level replayed', async (t) => {
  const gw = await startGateway(baseConfig({ servers: [faulty('s', { restart: { initial: '200ms', max: '1s' } }), miniServer('other', { extra: 'only_other' })] }), { t });
  const s = await openSession(gw.url);
  await setUp(s);
  await until(() => count(upstreamLog(gw), 'request logging/setLevel') >= 1, { what: 'setLevel reached the server' });
  const pid = Number(text(await s.callTool('pid')));
  assert.ok(pid > 0);
  const inflight = s.callTool('s__sleep', { ms: 5000 }, { timeout: 10000 });
  await new Promise((r) => setTimeout(r, 300)); // the call has reached the process
  process.kill(pid, 'SIGKILL');
  const lost = await inflight;
  assertRpcError(lost, { code: -32001, message: [/server "s"/, /went away/] });
  // The client's session is intact; the next call is held until the new process is initialised.
  const again = await s.callTool('s__tool', { text: 'back' }, { timeout: 10000 });
  assert.equal(text(again), 's:back', again.text);
  await until(() => count(upstreamLog(gw), 'request resources/subscribe') >= 2 && count(upstreamLog(gw), 'request logging/setLevel') >= 2, { what: `replay\n${gw.tail()}` });
  assert.match(upstreamLog(gw), /request logging\/setLevel \{\\"level\\":\\"warning\\"\}[\s\S]*request logging\/setLevel \{\\"level\\":\\"warning\\"\}/);
  await gw.waitForEvent((e) => e.event === 'upstream_session_lost' && e.server === 's' && /process ended/.test(e.why));
  await gw.waitForEvent((e) => e.event === 'upstream_recovered' && e.server === 's');
  assert.equal(text(await s.callTool('only_other')), 'other:extra');
});

test('HTTP server that forgets its sessions: the refused call is sent again on a new session, with the replay', async (t) => {
  const up = await httpFixture(['--label', 'h']);
  t.after(() => up.kill());
  const gw = await startGateway(baseConfig({ servers: [{ name: 'h', transport: 'http', url: up.url }] }), { t });
  const s = await openSession(gw.url);
  await setUp(s);
  assert.equal(text(await s.callTool('forget')), 'forgotten');
  const r = await s.callTool('tool', { text: 'after 404' }, { timeout: 10000 });
  assert.equal(text(r), 'h:after 404', r.text);
  assert.equal(count(up.stderr(), 'request initialize'), 2, up.stderr());
  assert.equal(count(up.stderr(), 'request resources/subscribe {"uri":"mini://hello"}'), 2, up.stderr());
  assert.equal(count(up.stderr(), 'request logging/setLevel {"level":"warning"}'), 2, up.stderr());
  await gw.waitForEvent((e) => e.event === 'upstream_session_lost' && /HTTP 404/.test(e.why));
});

test('a dead session reported only in prose: the rule that fired is logged, the call is sent again after re-initialising', async (t) => {
  const gw = await startGateway(baseConfig({ servers: [faulty('p')] }), { t });
  const s = await openSession(gw.url);
  await setUp(s);
  assert.equal(text(await s.callTool('expire')), 'expired');
  const r = await s.callTool('tool', { text: 'prose' }, { timeout: 10000 });
  assert.equal(text(r), 'p:prose', r.text);
  const lost = await gw.waitForEvent((e) => e.event === 'upstream_session_lost', { what: 'upstream_session_lost' });
  assert.match(lost.why, /Session expired: please re-initialize.*matched the rule "session expired"/);
  await until(() => count(upstreamLog(gw), 'request initialize') >= 2 && count(upstreamLog(gw), 'request resources/subscribe') >= 2, { what: 'replay' });
  // A tool's own error that merely mentions sessions is not taken for a dead session.
  const own = await s.callTool('no-such-tool-session');
  assertRpcError(own, { message: /Unknown tool/ });
});

test('a stalled server: calls fail with its name and the limit; the session and other servers are unaffected', async (t) => {
  const gw = await startGateway(
    baseConfig({ servers: [faulty('slow', { timeouts: { first_byte: '500ms', total: '1s' } }), miniServer('other', { extra: 'only_other' })] }),
    { t },
  );
  const s = await openSession(gw.url);
  assert.equal(text(await s.callTool('stall')), 'stalling');
  const r = await s.callTool('slow__tool', { text: 'x' }, { timeout: 5000 });
  assertRpcError(r, { code: -32004, message: [/server "slow"/, /1000 ms/, /timeouts\.total/] });
  assert.equal(text(await s.callTool('only_other')), 'other:extra');
  const p = await s.rpc('ping');
  assert.deepEqual(p.json.result, {});
});

test('an HTTP server that stays dead: bounded re-initialisations, then an error naming the server; the next call tries again', async (t) => {
  const up = await httpFixture(['--label', 'gone']);
  const gw = await startGateway(baseConfig({ servers: [{ name: 'gone', transport: 'http', url: up.url, timeouts: { connect: '300ms', total: '30s' } }, miniServer('other', { extra: 'only_other' })] }), { t });
  const s = await openSession(gw.url);
  up.kill();
  // The call that finds it gone fails at once (it was never delivered); the server is then
  // re-initialised, and a call made meanwhile waits for that, up to RECOVERY_MAX_ATTEMPTS.
  const first = await s.callTool('gone__tool', { text: 'x' }, { timeout: 30000 });
  assertRpcError(first, { code: -32001, message: [/server "gone"/, /unreachable/] });
  const t0 = Date.now();
  const r = await s.callTool('gone__tool', { text: 'y' }, { timeout: 30000 });
  assertRpcError(r, { code: -32001, message: [/server "gone"/, /could not be re-initialised in 5 attempts/] });
  assert.ok(Date.now() - t0 < 25000, `gave up after ${Date.now() - t0} ms`);
  const again = await s.callTool('gone__tool', { text: 'z' }, { timeout: 30000 });
  assertRpcError(again, { code: -32001, message: /server "gone"/ });
  await gw.waitForEvent((e) => e.event === 'upstream_session_lost' && /after recovery had given up/.test(e.why), { what: 'a new round on demand' });
  assert.equal(text(await s.callTool('only_other')), 'other:extra');
});

/** Opens the session's GET stream; resolves {messages, close()}. */
function getStream(url, sid) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'GET', headers: { Accept: 'text/event-stream', 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': PROTOCOL } }, (res) => {
      const messages = [];
      let buf = '';
      res.on('data', (c) => {
        buf += c;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const ev = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = ev.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
          if (data) messages.push(JSON.parse(data));
        }
      });
      resolve({ messages, close: () => req.destroy() });
    });
    req.on('error', reject);
    req.end();
  });
}

test('a legacy client of a 2026-07-28 server: its subscription rides the listen filter and resources/updated arrives; its log level rides _meta', async (t) => {
  const up = await httpFixture(['--modern', '--label', 'm']);
  t.after(() => up.kill());
  const gw = await startGateway(baseConfig({ servers: [{ name: 'm', transport: 'http', url: up.url, timeouts: { total: '1s', idle: '500ms' } }] }), { t });
  const s = await openSession(gw.url);
  const stream = await getStream(gw.url, s.id);
  t.after(() => stream.close());
  await s.rpc('resources/subscribe', { uri: 'mini://hello' });
  await until(() => up.stderr().includes('"resourceSubscriptions":["mini://hello"]'), { what: `listen with the subscription\n${up.stderr()}` });
  // The listen stream outlives timeouts.total and timeouts.idle (it is a stream, not a call).
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(count(up.stderr(), 'listen closed'), 1, up.stderr()); // only the one the subscribe replaced
  assert.equal(text(await s.callTool('touch')), 'touched 1');
  await until(() => stream.messages.some((m) => m.method === 'notifications/resources/updated' && m.params.uri === 'mini://hello'), { what: 'resources/updated on the GET stream' });
  await s.rpc('logging/setLevel', { level: 'warning' });
  const r = await s.callTool('log');
  assert.match(r.text, /at warning/);
  assert.match(r.text, /at error/);
  assert.doesNotMatch(r.text, /at debug/);
});
