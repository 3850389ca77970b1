// What the authorization server and the bearer check refuse, each with its status and a
// description that names the cause, and nothing secret in the log.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { test } from 'node:test';
import { REDIRECT, authorizeUrl, browse, createUserClient, fullFlow, mcpInit, pkce, register, startAuthGateway, token } from './oauth_lib.mjs';
import { request, sleep } from './lib.mjs';

const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');

test('oauth negative: tokens at /mcp (forged, alg none, query string, revoked, reused code)', async (t) => {
  const gw = await startAuthGateway(t);
  const tok = await fullFlow(gw);
  const [h, p] = tok.access_token.split('.');
  const forged = `${h}.${p}.${crypto.randomBytes(64).toString('base64url')}`;
  let r = await mcpInit(gw.url, forged);
  assert.equal(r.status, 401);
  assert.match(r.headers['www-authenticate'], /error="invalid_token"/);
  assert.ok(r.json.error_description);

  for (const none of [`${b64({ alg: 'none', typ: 'at+jwt' })}.${p}.`, `${b64({ alg: 'none', typ: 'at+jwt' })}.${p}.AAAA`]) {
    r = await mcpInit(gw.url, none);
    assert.equal(r.status, 401);
    assert.match(r.json.error_description, /alg|none|signature|empty segment/i);
  }

  r = await request(`${gw.url}?access_token=${tok.access_token}`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{}' });
  assert.equal(r.status, 400);
  assert.match(r.json.error_description, /query string/);

  // RFC 7009 revocation of the access token: refused at once.
  const rev = await fetch(`${gw.base}/oauth/revoke`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: tok.access_token, client_id: tok.client.client_id }) });
  assert.equal(rev.status, 200);
  r = await mcpInit(gw.url, tok.access_token);
  assert.equal(r.status, 401, r.text);

  // The code was used by fullFlow: a second exchange fails and revokes its grant.
  const again = await token(gw, { grant_type: 'authorization_code', code: tok.code, redirect_uri: REDIRECT, code_verifier: tok.verifier, client_id: tok.client.client_id });
  assert.equal(again.status, 400);
  assert.match(again.json.error_description, /already used/);
  const refresh = await token(gw, { grant_type: 'refresh_token', refresh_token: tok.refresh_token, client_id: tok.client.client_id });
  assert.equal(refresh.status, 400, 'the refresh token of a reused code must be dead');
  const log = gw.tail(100000);
  assert.ok(!log.includes(tok.access_token) && !log.includes(tok.refresh_token) && !log.includes(tok.code));
});

test('oauth negative: the authorization request (redirect URI, PKCE, resource, unknown client)', async (t) => {
  const gw = await startAuthGateway(t);
  const client = await register(gw);
  const { challenge, verifier } = pkce();
  // A redirect URI that does not match: an error page, never a redirect.
  let res = await fetch(authorizeUrl(gw, { client_id: client.client_id, challenge, redirect_uri: 'https://evil.example/cb' }), { redirect: 'manual' });
  assert.equal(res.status, 400);
  assert.match(await res.text(), /does not match the registered http:\/\/127\.0\.0\.1:9\/callback/);
  res = await fetch(authorizeUrl(gw, { client_id: 'nobody', challenge }), { redirect: 'manual' });
  assert.equal(res.status, 400);
  assert.match(await res.text(), /unknown client_id/);
  // After the redirect URI is trusted: back to the client with error and iss.
  const back = async (extra, challengeValue = challenge) => {
    const r = await fetch(authorizeUrl(gw, { client_id: client.client_id, challenge: challengeValue, extra }), { redirect: 'manual' });
    assert.equal(r.status, 302);
    return new URL(r.headers.get('location')).searchParams;
  };
  let q = await back({ code_challenge_method: 'plain' }, verifier);
  assert.equal(q.get('error'), 'invalid_request');
  assert.match(q.get('error_description'), /S256/);
  assert.equal(q.get('iss'), gw.base);
  assert.equal(q.get('state'), 'st-1');
  q = await back({ code_challenge: undefined });
  assert.match(q.get('error_description'), /PKCE is required/);
  q = await back({ resource: 'https://elsewhere.example/mcp' });
  assert.equal(q.get('error'), 'invalid_target');
  q = await back({ scope: 'admin' });
  assert.equal(q.get('error'), 'invalid_scope');
  // Wrong verifier at the token endpoint.
  const { location } = await browse(authorizeUrl(gw, { client_id: client.client_id, challenge }));
  const bad = await token(gw, { grant_type: 'authorization_code', code: location.searchParams.get('code'), redirect_uri: REDIRECT, code_verifier: pkce().verifier, client_id: client.client_id });
  assert.equal(bad.status, 400);
  assert.match(bad.json.error_description, /code_verifier does not match/);
  // A wrong password re-shows the form with a message.
  const page = await browse(authorizeUrl(gw, { client_id: client.client_id, challenge }), { password: 'wrong' });
  assert.equal(page.page.status, 401);
  assert.match(page.page.text, /Wrong user name or password/);
});

test('oauth negative: CIMD URLs at loopback or private addresses, and oversized documents', async (t) => {
  const gw = await startAuthGateway(t);
  const { challenge } = pkce();
  for (const host of ['127.0.0.1', '10.0.0.1']) {
    const res = await fetch(authorizeUrl(gw, { client_id: `https://${host}/client.json`, challenge }), { redirect: 'manual', signal: AbortSignal.timeout(15000) });
    assert.equal(res.status, 400);
    assert.match(await res.text(), /SSRF|address|resolve|refused|private/i, host);
  }
  // With cimd_allow_private, a loopback document larger than cimd_max_size.
  const big = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ client_id: `http://127.0.0.1:${big.address().port}/c.json`, redirect_uris: [REDIRECT], pad: 'x'.repeat(40000) }));
  });
  await new Promise((r) => big.listen(0, '127.0.0.1', r));
  t.after(() => big.close());
  const gw2 = await startAuthGateway(t, { auth: { registration: { cimd_allow_private: true, cimd_max_size: '16KiB' } } });
  const res = await fetch(authorizeUrl(gw2, { client_id: `http://127.0.0.1:${big.address().port}/c.json`, challenge }), { redirect: 'manual' });
  assert.equal(res.status, 400);
  assert.match(await res.text(), /larger than|cimd_max_size/);
});

test('oauth negative: DCR validation and switch', async (t) => {
  const gw = await startAuthGateway(t);
  let res = await fetch(`${gw.base}/oauth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ redirect_uris: ['http://evil.example/cb'] }) });
  assert.equal(res.status, 400);
  assert.match((await res.json()).error_description, /must use https/);
  const gw2 = await startAuthGateway(t, { auth: { registration: { dynamic: false } } });
  res = await fetch(`${gw2.base}/oauth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ redirect_uris: [REDIRECT] }) });
  assert.equal(res.status, 403);
  assert.match((await res.json()).error_description, /disabled/);
});

test('oauth negative: expired token, insufficient_scope, revoke --user, API keys, refresh-token introspection', async (t) => {
  // Access tokens live 1 s here; the validator tolerates 30 s of clock skew on exp (replicas),
  // so the expiry is checked at the end, after the other cases.
  const gw = await startAuthGateway(t, { auth: { access_token_ttl: '1s', scopes: ['mcp', 'admin'], required_scope: 'mcp' }, resourceServer: true });
  const issued = Date.now();
  const tok = await fullFlow(gw);
  assert.equal((await mcpInit(gw.url, tok.access_token)).status, 200);

  // Introspection (a configured resource server asks) answers for refresh tokens too.
  let [id, secret] = gw.rs;
  const introspect = async (token) => {
    const res = await fetch(`${gw.base}/oauth/introspect`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: 'Basic ' + Buffer.from(`${id}:${secret}`).toString('base64') },
      body: new URLSearchParams({ token }),
    });
    assert.equal(res.status, 200);
    return res.json();
  };
  let info = await introspect(tok.refresh_token);
  assert.equal(info.active, true, JSON.stringify(info));
  assert.equal(info.token_type, 'refresh_token');
  assert.equal(info.client_id, tok.client.client_id);
  assert.equal(info.username, 'alice');
  assert.equal(info.aud, `${gw.base}/mcp`);
  const rotated = await token(gw, { grant_type: 'refresh_token', refresh_token: tok.refresh_token, client_id: tok.client.client_id });
  assert.equal(rotated.status, 200, JSON.stringify(rotated.json));
  assert.deepEqual(await introspect(tok.refresh_token), { active: false }, 'a used refresh token is not active');
  assert.equal((await introspect(rotated.json.refresh_token)).active, true);

  // API keys of a service account: accepted at /mcp, refused once revoked.
  gw.cli(['account', 'add', 'ci-bot']);
  const key = gw.cli(['apikey', 'create', '--account', 'ci-bot', '--label', 'deploys']);
  assert.match(key, /^ghk_[^_\s]+_\S+$/);
  let r = await mcpInit(gw.url, key);
  assert.equal(r.status, 200, r.text);
  gw.cli(['apikey', 'revoke', key.split('_')[1]]);
  r = await mcpInit(gw.url, key);
  assert.equal(r.status, 401, r.text);
  assert.match(r.headers['www-authenticate'], /error="invalid_token"/);
  assert.match(r.json.error_description, /revoked|unknown|API key/i);

  // A user's own client asking for a token without the required scope: 403 insufficient_scope.
  ({ id, secret } = createUserClient(gw.configFile, 'bob'));
  const narrow = await token(gw, { grant_type: 'client_credentials', scope: 'admin' }, { basic: [id, secret] });
  assert.equal(narrow.status, 200, JSON.stringify(narrow.json));
  r = await mcpInit(gw.url, narrow.json.access_token);
  assert.equal(r.status, 403, r.text);
  assert.match(r.headers['www-authenticate'], /error="insufficient_scope"/);
  assert.match(r.headers['www-authenticate'], /scope="mcp"/);
  assert.equal(r.json.error, 'insufficient_scope');

  // revoke --user with the real CLI: bob's tokens die at once, on every worker.
  const bobs = await token(gw, { grant_type: 'client_credentials' }, { basic: [id, secret] });
  assert.equal((await mcpInit(gw.url, bobs.json.access_token)).status, 200);
  await sleep(1100); // tokens_valid_after has a one-second grain
  gw.cli(['revoke', '--user', 'bob']);
  r = await mcpInit(gw.url, bobs.json.access_token);
  assert.equal(r.status, 401, r.text);
  assert.match(r.json.error_description, /revoked/);

  // The first access token, now past exp + the 30 s leeway.
  await sleep(Math.max(0, issued + 32500 - Date.now()));
  r = await mcpInit(gw.url, tok.access_token);
  assert.equal(r.status, 401, r.text);
  assert.match(r.headers['www-authenticate'], /error="invalid_token"/);
  assert.match(r.json.error_description, /expired/);
  const log = gw.tail(100000);
  for (const s of [key, secret, tok.refresh_token, rotated.json.refresh_token]) assert.ok(!log.includes(s), 'a secret is in the log');
});
