// Single sign-on with a real identity provider: oidc-provider (fixtures/idp.mjs) is the
// organisation's IdP and Gatehouse its relying party. The official SDK client connects to a
// gateway whose only sign-in is that IdP (login.local: false): its authorization URL sends the
// browser straight on to the IdP (nothing to choose on a login page), the IdP's login and consent pages
// back to /oauth/sso/callback, then to Gatehouse's consent page; the SDK exchanges the code and
// lists tools through /mcp. Then what the relying party must refuse, each with a page that names
// the cause, and the IdP's client secret nowhere in the gateway's log.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import { Browser, startAuthGateway } from '../integration/oauth_lib.mjs';
import { idpLogin } from './lib/browser.mjs';
import { startSsoGateway } from './lib/idp.mjs';
import { MemoryProvider, approve, isClientCallback, sdkAuthorize, sdkConnect } from './lib/oauth.mjs';

/** An IdP and a gateway whose only sign-in is provider "corp" at that IdP. */
const startSso = (t, provider = {}) => startSsoGateway(t, { provider });

const isSsoCallback = (gw) => (u) => u.startsWith(`${gw.base}/oauth/sso/callback`);

/** From Gatehouse's authorization URL to the IdP's answer at /oauth/sso/callback (not followed).
    The only way in is provider "corp", so the authorization request goes straight to it. */
async function toIdpAnswer(gw, browser, authorizeUrl, account) {
  const toStart = (u) => isClientCallback(u) || u.startsWith(`${gw.base}/oauth/sso/`);
  const { page, location: start } = await browser.follow(authorizeUrl.toString(), {}, toStart);
  assert.ok(start && !isClientCallback(start), `not sent to the provider: ${page.status} ${page.text.slice(0, 300)}`);
  assert.match(start, /\/oauth\/sso\/corp\?authz=/);
  return idpLogin(browser, start, account, isSsoCallback(gw));
}

/** The whole browser journey for `account`; returns the client callback's parameters. */
async function ssoJourney(gw, authorizeUrl, account, browser = new Browser()) {
  const answer = await toIdpAnswer(gw, browser, authorizeUrl, account);
  const { page, location } = await browser.follow(answer, {}, isClientCallback);
  assert.ok(!location, 'consent was skipped');
  assert.equal(page.status, 200, page.text.slice(0, 400));
  assert.match(page.text, new RegExp(`Signed in as <strong>${account}</strong>`));
  return approve(browser, page);
}

/** A pending authorization request at the gateway (a DCR client of its own), for the journeys
    that are meant to fail before a code is issued. */
async function authorizeUrlFor(gw) {
  const reg = await fetch(`${gw.base}/oauth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: 'SSO test', redirect_uris: ['http://127.0.0.1:9/oauth/callback'], token_endpoint_auth_method: 'none' }),
  }).then((r) => r.json());
  const challenge = crypto.createHash('sha256').update(crypto.randomBytes(32).toString('base64url')).digest('base64url');
  const u = new URL(`${gw.base}/oauth/authorize`);
  for (const [k, v] of Object.entries({ response_type: 'code', client_id: reg.client_id, redirect_uri: 'http://127.0.0.1:9/oauth/callback', code_challenge: challenge, code_challenge_method: 'S256', resource: `${gw.base}/mcp`, state: 's' })) u.searchParams.set(k, v);
  return u;
}

const users = (gw) => JSON.parse(gw.cli(['user', 'list', '--json']));

test('SSO: SDK client through the IdP; JIT user, teams from groups, the same user at the next login', async (t) => {
  const { gw, secret } = await startSso(t);
  const provider = new MemoryProvider();
  const params = await sdkAuthorize(gw.url, provider, (au) => ssoJourney(gw, au, 'alice'));
  assert.equal(params.get('iss'), gw.base);
  const client = await sdkConnect(gw.url, provider);
  const tools = await client.listTools();
  assert.ok(tools.tools.some((x) => x.name === 'a__tool'), JSON.stringify(tools.tools.map((x) => x.name)));
  await client.close();

  // Created just in time, with the IdP's groups as teams.
  let list = users(gw);
  assert.equal(list.length, 1, JSON.stringify(list));
  const alice = list[0];
  assert.equal(alice.name, 'alice');
  assert.equal(alice.email, 'alice@example.com');
  assert.deepEqual(alice.teams.map((x) => x.name).sort(), ['billing', 'engineering']);
  const teams = gw.cli(['team', 'list']);
  assert.match(teams, /^engineering\s+1$/m);
  assert.match(teams, /^billing\s+1$/m);
  assert.match(gw.tail(100000), /user \\?"alice\\?" created at first login through provider \\?"corp\\?"/);

  // A second login (another browser, another application) is the same user, linked by subject.
  const again = new MemoryProvider();
  await sdkAuthorize(gw.url, again, (au) => ssoJourney(gw, au, 'alice'));
  list = users(gw);
  assert.equal(list.length, 1, JSON.stringify(list));
  assert.equal(list[0].id, alice.id);

  // A disabled user is refused at the callback, with the cause.
  gw.cli(['user', 'disable', 'alice']);
  const browser = new Browser();
  const answer = await toIdpAnswer(gw, browser, await authorizeUrlFor(gw), 'alice');
  const { page } = await browser.follow(answer, {}, isClientCallback);
  assert.equal(page.status, 403);
  assert.match(page.text, /user &quot;alice&quot; is disabled/);

  const log = gw.tail(100000);
  assert.ok(!log.includes(secret), 'the IdP client secret is in the gateway log');
  for (const tok of [provider.saved.tokens.access_token, again.saved.tokens.access_token]) assert.ok(!log.includes(tok), 'a token is in the log');
  await gw.stop(); // a clean exit (under ASan: no leak after SSO logins)
});

test('SSO: a tampered state, a replayed callback and a callback in another browser are refused', async (t) => {
  const { gw, secret } = await startSso(t);
  const browser = new Browser();
  const answer = new URL(await toIdpAnswer(gw, browser, await authorizeUrlFor(gw), 'alice'));
  assert.ok(answer.searchParams.get('code') && answer.searchParams.get('state'));

  // Tampered state: unknown.
  const tampered = new URL(answer);
  const st = answer.searchParams.get('state');
  const mid = st.length >> 1; // a character in the middle always changes the bytes; the last ones may not
  tampered.searchParams.set('state', st.slice(0, mid) + (st[mid] === 'x' ? 'y' : 'x') + st.slice(mid + 1));
  let page = (await browser.follow(tampered.toString(), {}, isClientCallback)).page;
  assert.equal(page.status, 400);
  assert.match(page.text, /this login is unknown, already finished or expired/);

  // Someone else's browser (login CSRF): no binding cookie, refused; the state is spent.
  const other = new Browser();
  page = (await other.follow(answer.toString(), {}, isClientCallback)).page;
  assert.equal(page.status, 403);
  assert.match(page.text, /started in another browser/);

  // A fresh login; its callback works once, and a replay of it is refused.
  const answer2 = await toIdpAnswer(gw, browser, await authorizeUrlFor(gw), 'alice');
  const first = await browser.follow(answer2, {}, isClientCallback);
  assert.equal(first.page.status, 200, first.page.text.slice(0, 300));
  assert.match(first.page.text, /Allow access\?/);
  page = (await browser.follow(answer2, {}, isClientCallback)).page;
  assert.equal(page.status, 400);
  assert.match(page.text, /already finished/);

  // A mix-up: an answer claiming another issuer is refused before any code is exchanged.
  const b3 = new Browser();
  const answer3 = new URL(await toIdpAnswer(gw, b3, await authorizeUrlFor(gw), 'alice'));
  answer3.searchParams.set('iss', 'https://evil.example');
  page = (await b3.follow(answer3.toString(), {}, isClientCallback)).page;
  assert.equal(page.status, 403);
  assert.match(page.text, /mix-up/);
  assert.ok(!gw.tail(100000).includes(secret), 'the IdP client secret is in the gateway log');
});

test('SSO: jit: false refuses an unknown user, and signs in one an administrator prepared', async (t) => {
  const { gw, secret } = await startSso(t, { jit: false });
  const browser = new Browser();
  const answer = await toIdpAnswer(gw, browser, await authorizeUrlFor(gw), 'bob');
  const { page } = await browser.follow(answer, {}, isClientCallback);
  assert.equal(page.status, 403);
  assert.match(page.text, /&quot;bob&quot; is not provisioned in Gatehouse and provider &quot;corp&quot; has jit: false/);
  assert.equal(users(gw).length, 0);

  gw.cli(['user', 'add', 'bob', '--no-password']);
  const provider = new MemoryProvider();
  await sdkAuthorize(gw.url, provider, (au) => ssoJourney(gw, au, 'bob'));
  const client = await sdkConnect(gw.url, provider);
  assert.ok((await client.listTools()).tools.length > 0);
  await client.close();
  const list = users(gw);
  assert.deepEqual(list.map((u) => u.name), ['bob']);
  assert.deepEqual(list[0].teams.map((x) => x.name), ['support']);
  assert.ok(!gw.tail(100000).includes(secret), 'the IdP client secret is in the gateway log');
});

test('SSO: a browser that goes away while the provider is slow, and a shutdown with a login pending', async (t) => {
  // A provider that accepts connections and never answers.
  const sockets = new Set();
  const silent = net.createServer((s) => sockets.add(s));
  await new Promise((r) => silent.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });
  const gw = await startAuthGateway(t, {
    workers: 1,
    auth: { login: { providers: [{ name: 'slow', issuer: `http://127.0.0.1:${silent.address().port}`, client_id: 'gh' }] } },
  });
  const browser = new Browser();
  const { page } = await browser.follow((await authorizeUrlFor(gw)).toString());
  const href = page.text.match(/<a class="sso" href="([^"]+)"/)[1].replace(/&amp;/g, '&');
  const start = new URL(href, page.url).toString();
  // The browser gives up while the discovery document is awaited: the gateway drops the wait.
  await assert.rejects(fetch(start, { redirect: 'manual', signal: AbortSignal.timeout(300) }));
  const health = await fetch(`${gw.base}/healthz`);
  assert.equal(health.status, 200);
  // Another one still waits when the gateway is told to stop: it is answered 503 at once.
  const pending = fetch(start, { redirect: 'manual' }).catch((e) => e);
  await new Promise((r) => setTimeout(r, 200));
  const exit = await gw.stop();
  assert.equal(exit.code, 0, JSON.stringify(exit));
  const res = await pending;
  assert.equal(res.status, 503, String(res));
  assert.match(await res.text(), /shutting down/);
});
