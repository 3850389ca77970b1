// Gatehouse as the OAuth client of an upstream MCP server (a server with auth.oauth), end to end
// with real components: the gateway, a real MCP server behind its own authorization server
// (fixtures/oauth-upstream.mjs), users who sign in to the gateway through its real login and
// consent pages, and a "browser" (cookie jar, redirects by hand) for the connect link.
//   - a call of a user who has not connected is refused with -32042 (URLElicitationRequired)
//     carrying a URL-mode elicitation: their own single-use connect link;
//   - following it connects the account (discovery, registration, PKCE, code exchange, vault);
//   - the next call carries the user's token; an expired token is refreshed first;
//   - another user never gets the first user's token (their calls get their own link);
//   - no token reaches the store in clear, nor any log line or answer;
//   - kill -9 after the exchange keeps the connection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startOauthUpstream } from './fixtures/oauth-upstream.mjs';
import { Browser, authorizeUrl, browse, cli, fullFlow, mcpCall, mcpInit, pkce, register, startAuthGateway } from './oauth_lib.mjs';
import { miniServer, startGateway } from './lib.mjs';

async function session(gw, tok) {
  const r = await mcpInit(gw.url, tok);
  assert.equal(r.status, 200, JSON.stringify(r.json ?? r.text));
  return r.headers['mcp-session-id'];
}

function call(gw, tok, sid) {
  return mcpCall(gw.url, tok, sid, 'tools/call', { name: 'whoami', arguments: {} });
}

/** Everything a file holds, as text (SQLite's database and WAL are searched byte-wise). */
function fileText(f) {
  return fs.existsSync(f) ? fs.readFileSync(f).toString('latin1') : '';
}

/** The store's bytes: SQLite's files, or on PostgreSQL every row of upstream_tokens as text. */
function storeText(gw) {
  if (gw.db) return fileText(gw.db) + fileText(`${gw.db}-wal`);
  const cfg = JSON.parse(fs.readFileSync(gw.configFile, 'utf8'));
  const db = new URL(cfg.store.postgres).pathname.slice(1);
  const { GH_TEST_PG_BINDIR: bin, GH_TEST_PG_HOST: host, GH_TEST_PG_PORT: port } = process.env;
  const r = spawnSync(path.join(bin, 'psql'), ['-X', '-A', '-t', '-h', host, '-p', port, '-U', 'postgres', '-d', db, '-c', 'SELECT * FROM upstream_tokens'], { encoding: 'latin1' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test('a user connects an upstream account through the -32042 link; tokens stay theirs and sealed', { timeout: 90000 }, async (t) => {
  const up = await startOauthUpstream({ firstTtl: 5 });
  t.after(() => up.close());
  const upstream = { name: 'up', url: up.url, protocol: '2025-11-25', auth: { oauth: { allow_private: true } } };
  const gw = await startAuthGateway(t, { extra: { servers: [miniServer('a'), upstream] } });
  const alice = (await fullFlow(gw, { user: 'alice' })).access_token;
  const bob = (await fullFlow(gw, { user: 'bob' })).access_token;
  const sa = await session(gw, alice);

  // 1. not connected: -32042 with alice's own link, nothing sent upstream
  let r = await call(gw, alice, sa);
  assert.equal(r.status, 200, JSON.stringify(r.json ?? r.text));
  const err = r.json.error;
  assert.equal(err?.code, -32042, JSON.stringify(r.json ?? r.text));
  assert.match(err.message, /server "up" needs your authorization \(you have not connected your account yet\): open http/);
  const el = err.data.elicitations[0];
  assert.equal(el.mode, 'url');
  assert.ok(el.elicitationId);
  assert.ok(el.url.startsWith(`${gw.base}/oauth/upstream/up/start?t=`), el.url);
  assert.equal(up.log.calls.length, 0, 'a refused call never reaches the server');

  // 2. the browser: signed in at the upstream as "alice-up", follows the link
  const browser = new Browser();
  await browser.request(`${up.base}/login?who=alice-up`);
  const { page } = await browser.follow(el.url);
  assert.equal(page.status, 200, page.text);
  assert.match(page.text, /Connected/);
  assert.deepEqual(up.log.tokens, ['authorization_code']);
  // single use
  const again = await browser.follow(el.url);
  assert.equal(again.page.status, 403);
  assert.match(again.page.text, /used already/);
  // a forged or altered link
  const forged = await new Browser().follow(el.url.replace(/t=(.)/, (m, c) => `t=${c === 'A' ? 'B' : 'A'}`));
  assert.equal(forged.page.status, 403);

  // 3. the call now carries alice's token; the first grant expired at once (5 s, within the
  //    vault's 30 s margin): refreshed before the call
  r = await call(gw, alice, sa);
  assert.equal(r.json.result?.content?.[0]?.text, 'upstream account alice-up', JSON.stringify(r.json ?? r.text));
  assert.deepEqual(up.log.tokens, ['authorization_code', 'refresh_token']);
  const used = up.log.calls.at(-1).token;
  assert.equal(used, up.log.issued[2], 'the refreshed access token is the one sent');
  r = await call(gw, alice, sa);
  assert.equal(r.json.result?.content?.[0]?.text, 'upstream account alice-up');
  assert.deepEqual(up.log.tokens, ['authorization_code', 'refresh_token'], 'a fresh token is not refreshed');

  // 4. bob never gets alice's token: his call is refused with his own link
  const sb = await session(gw, bob);
  const nCalls = up.log.calls.length;
  r = await call(gw, bob, sb);
  assert.equal(r.json.error?.code, -32042, JSON.stringify(r.json ?? r.text));
  assert.notEqual(r.json.error.data.elicitations[0].url, el.url);
  assert.equal(up.log.calls.length, nCalls, "bob's call never reached the server");
  // bob's link opened in a browser signed in to the gateway as alice is refused (it would put
  // that browser's upstream account in bob's hands), and the link is spent
  const { browser: aliceGw } = await browse(authorizeUrl(gw, { client_id: (await register(gw)).client_id, challenge: pkce().challenge }), { user: 'alice' });
  const wrong = await aliceGw.follow(r.json.error.data.elicitations[0].url);
  assert.equal(wrong.page.status, 403);
  assert.match(wrong.page.text, /signed in to Gatehouse as &quot;alice&quot;, but the link to connect &quot;up&quot; is another user/);
  r = await call(gw, bob, sb);
  assert.equal(r.json.error?.code, -32042);
  // bob's own browser connects his upstream account (bob-up) to his gateway user
  const bobBrowser = new Browser();
  await bobBrowser.request(`${up.base}/login?who=bob-up`);
  assert.match((await bobBrowser.follow(r.json.error.data.elicitations[0].url)).page.text, /Connected/);
  r = await call(gw, bob, sb);
  assert.equal(r.json.result?.content?.[0]?.text, 'upstream account bob-up');
  r = await call(gw, alice, sa);
  assert.equal(r.json.result?.content?.[0]?.text, 'upstream account alice-up');
  for (const c of up.log.calls) assert.ok(c.who === null || ['alice-up', 'bob-up'].includes(c.who));
  assert.equal(up.log.registered, 1, 'one dynamic registration, reused for every user of the server');

  // 5. the CLI lists connections without tokens, and forgets one
  const list = JSON.parse(gw.cli(['user', 'connections', 'alice', '--json']));
  assert.deepEqual(list.map((c) => [c.server, c.scope]), [['up', 'tools']]);

  // 6. no token in clear: the store's bytes, the gateway's output, the CLI's
  const secrets = [...up.log.issued];
  assert.ok(secrets.length >= 6);
  const haystacks = { store: storeText(gw), log: gw.lines.join('\n') + gw.stdout, cli: JSON.stringify(list) };
  for (const [where, text] of Object.entries(haystacks)) for (const s of secrets) assert.ok(!text.includes(s), `a token is in the ${where}`);
  assert.ok(haystacks.store.length > 0);

  // 7. kill -9 after the exchange keeps the connection: a new gateway on the same store uses it
  await gw.kill();
  const gw2 = await startGateway(fs.readFileSync(gw.configFile, 'utf8'), { t, dir: path.dirname(gw.configFile) });
  const alice2 = (await fullFlow(gw2, { user: 'alice' })).access_token;
  const s2 = await session(gw2, alice2);
  r = await call(gw2, alice2, s2);
  assert.equal(r.json.result?.content?.[0]?.text, 'upstream account alice-up', JSON.stringify(r.json ?? r.text));

  // 8. disconnect: the next call asks again
  assert.match(cli(gw.configFile, ['user', 'disconnect', 'alice', 'up']), /disconnected/);
  r = await call(gw2, alice2, s2);
  assert.equal(r.json.error?.code, -32042);
  await gw2.stop(); // a clean exit (under ASan: no leak)
});

test('a token the server refuses, or a wider scope it asks for, sends the user a new link', { timeout: 60000 }, async (t) => {
  const up = await startOauthUpstream({ firstTtl: 3600 });
  t.after(() => up.close());
  const upstream = { name: 'up', url: up.url, protocol: '2025-11-25', auth: { oauth: { allow_private: true } } };
  const gw = await startAuthGateway(t, { users: ['alice'], extra: { servers: [upstream] } });
  const alice = (await fullFlow(gw, { user: 'alice' })).access_token;
  const sa = await session(gw, alice);
  const browser = new Browser();
  await browser.request(`${up.base}/login?who=alice-up`);
  let r = await call(gw, alice, sa);
  assert.match((await browser.follow(r.json.error.data.elicitations[0].url)).page.text, /Connected/);
  assert.deepEqual(up.log.scopes, ['tools'], 'the first authorization asks for the scopes the resource lists');

  // step-up: 403 insufficient_scope → a link asking for the granted scope and the new one
  r = await mcpCall(gw.url, alice, sa, 'tools/call', { name: 'write_thing', arguments: {} });
  assert.equal(r.json.error?.code, -32042, JSON.stringify(r.json ?? r.text));
  assert.match(r.json.error.message, /server "up" needs more access than you granted \(scope "write"\): open http/);
  assert.match((await browser.follow(r.json.error.data.elicitations[0].url)).page.text, /Connected/);
  assert.deepEqual(up.log.scopes, ['tools', 'tools write'], 'the union of the granted and the challenged scope');
  r = await mcpCall(gw.url, alice, sa, 'tools/call', { name: 'write_thing', arguments: {} });
  assert.equal(r.json.result?.content?.[0]?.text, 'upstream account alice-up wrote', JSON.stringify(r.json ?? r.text));

  // a token the server no longer accepts (401): a link to connect again
  await fetch(`${up.base}/revoke-all`);
  r = await call(gw, alice, sa);
  assert.equal(r.json.error?.code, -32042, JSON.stringify(r.json ?? r.text));
  assert.match(r.json.error.message, /server "up" did not accept your token/);
  assert.match((await browser.follow(r.json.error.data.elicitations[0].url)).page.text, /Connected/);
  r = await call(gw, alice, sa);
  assert.equal(r.json.result?.content?.[0]?.text, 'upstream account alice-up');
  assert.equal(up.log.registered, 1, 'three connections, one registration');
  const text = gw.lines.join('\n') + gw.stdout;
  for (const s of up.log.issued) assert.ok(!text.includes(s), 'a token is in the log');
  await gw.stop();
});
