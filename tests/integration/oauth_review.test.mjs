// Findings of the security review of the authorization server, each kept as a regression test:
// introspection that ignored user and client revocation, refresh tokens revocable by any
// client, bogus API keys that cost an argon2id on the worker's loop, and password guessing
// without back-off.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';
import { Browser, PASSWORD, authorizeUrl, createUserClient, fullFlow, mcpInit, pkce, register, startAuthGateway, token } from './oauth_lib.mjs';
import { sleep } from './lib.mjs';

async function introspect(gw, [id, secret], tok) {
  const res = await fetch(`${gw.base}/oauth/introspect`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: 'Basic ' + Buffer.from(`${id}:${secret}`).toString('base64') },
    body: new URLSearchParams({ token: tok }),
  });
  assert.equal(res.status, 200);
  return res.json();
}

test('oauth review: introspection follows revoke --user and a disabled user', async (t) => {
  const gw = await startAuthGateway(t, { users: ['alice', 'bob'], resourceServer: true });
  const rs = { id: gw.rs[0], secret: gw.rs[1] }; // the resource server asking
  const a = await fullFlow(gw, { user: 'alice' });
  const b = await fullFlow(gw, { user: 'bob' });
  for (const x of [a, b]) assert.equal((await introspect(gw, [rs.id, rs.secret], x.access_token)).active, true);

  await sleep(1100); // tokens_valid_after has a one-second grain
  gw.cli(['revoke', '--user', 'alice']);
  assert.equal((await mcpInit(gw.url, a.access_token)).status, 401);
  assert.deepEqual(await introspect(gw, [rs.id, rs.secret], a.access_token), { active: false }, 'revoke --user');

  gw.cli(['user', 'disable', 'bob']);
  assert.equal((await mcpInit(gw.url, b.access_token)).status, 401);
  assert.deepEqual(await introspect(gw, [rs.id, rs.secret], b.access_token), { active: false }, 'disabled user');
  assert.deepEqual(await introspect(gw, [rs.id, rs.secret], b.refresh_token), { active: false }, 'disabled user (refresh)');
});

test('oauth review: a client cannot revoke the refresh token of another client', async (t) => {
  const gw = await startAuthGateway(t);
  const victim = await fullFlow(gw);
  const other = await register(gw, { client_name: 'Other' });
  const res = await fetch(`${gw.base}/oauth/revoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: victim.refresh_token, client_id: other.client_id }),
  });
  assert.equal(res.status, 400);
  assert.match((await res.json()).error_description, /another client/);
  const r = await token(gw, { grant_type: 'refresh_token', refresh_token: victim.refresh_token, client_id: victim.client.client_id });
  assert.equal(r.status, 200, `the victim's grant must survive: ${JSON.stringify(r.json)}`);
  // Its own client may revoke it (and the whole grant).
  const own = await fetch(`${gw.base}/oauth/revoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: r.json.refresh_token, client_id: victim.client.client_id }),
  });
  assert.equal(own.status, 200);
  const dead = await token(gw, { grant_type: 'refresh_token', refresh_token: r.json.refresh_token, client_id: victim.client.client_id });
  assert.equal(dead.status, 400);
});

test('oauth review: bogus API keys cost no password hash (no unauthenticated CPU exhaustion)', async (t) => {
  const gw = await startAuthGateway(t, { workers: 1 });
  const bogus = () => `ghk_${crypto.randomBytes(8).toString('hex')}_${crypto.randomBytes(32).toString('base64url')}`;
  await mcpInit(gw.url, bogus()); // warm up
  const n = 20;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const r = await mcpInit(gw.url, i % 2 ? bogus() : `ghk_${crypto.randomBytes(6).toString('hex')}`);
    assert.equal(r.status, 401);
    assert.match(r.json.error_description, /API key/);
  }
  const per = (performance.now() - t0) / n;
  // An argon2id (64 MiB) takes tens of milliseconds; a table lookup well under one.
  assert.ok(per < 15, `a bogus API key took ${per.toFixed(1)} ms on the worker`);
});

test('oauth review: failed sign-ins back off per user, without locking out other users', async (t) => {
  const gw = await startAuthGateway(t);
  const client = await register(gw);
  const { challenge } = pkce();
  const browser = new Browser();
  let { page } = await browser.follow(authorizeUrl(gw, { client_id: client.client_id, challenge }));
  assert.match(page.text, /action="\/oauth\/login"/);
  for (let i = 0; i < 5; i++) {
    ({ page } = await browser.submit(page, { username: 'alice', password: `wrong-${i}` }, { match: '/oauth/login' }));
    assert.equal(page.status, 401, page.text);
    assert.match(page.text, /Wrong user name or password/);
  }
  // Even the right password now waits: the guesser cannot tell.
  ({ page } = await browser.submit(page, { username: 'alice', password: PASSWORD }, { match: '/oauth/login' }));
  assert.equal(page.status, 429, page.text);
  assert.match(page.text, /Too many failed sign-ins for this user name; wait \d+ s/);
  // Another user from the same address is not locked out.
  const b2 = new Browser();
  ({ page } = await b2.follow(authorizeUrl(gw, { client_id: client.client_id, challenge })));
  ({ page } = await b2.submit(page, { username: 'bob', password: PASSWORD }, { match: '/oauth/login', stop: (u) => u.startsWith('http://127.0.0.1:9/') }));
  assert.ok(page.status === 200 || page.status === 303, `bob: ${page.status} ${page.text.slice(0, 200)}`);
  assert.ok(!gw.tail(100000).includes(PASSWORD), 'a password is in the log');
});
