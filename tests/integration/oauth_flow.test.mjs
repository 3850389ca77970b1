// The authorization server end to end with plain fetch: discovery from the 401, dynamic
// registration, the real login and consent forms, the code exchange with PKCE, /mcp with the
// token, refresh rotation and replay detection, client_credentials for a per-user client, and
// user-bound sessions.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PASSWORD, REDIRECT, browse, authorizeUrl, fullFlow, mcpCall, mcpInit, pkce, register, startAuthGateway, createUserClient, token } from './oauth_lib.mjs';

test('oauth: discovery from the 401, DCR, login, consent, code, /mcp, refresh rotation and replay', async (t) => {
  const gw = await startAuthGateway(t);
  // 1. The 401 points at the protected-resource metadata, which points at the AS.
  const r401 = await mcpInit(gw.url, null);
  assert.equal(r401.status, 401);
  const wa = r401.headers['www-authenticate'];
  const prm = wa.match(/resource_metadata="([^"]+)"/)[1];
  assert.equal(prm, `${gw.base}/.well-known/oauth-protected-resource/mcp`);
  const pr = await (await fetch(prm)).json();
  assert.equal(pr.resource, `${gw.base}/mcp`);
  assert.deepEqual(pr.authorization_servers, [gw.base]);
  const as = await (await fetch(`${gw.base}/.well-known/oauth-authorization-server`)).json();
  assert.equal(as.issuer, gw.base);
  assert.deepEqual(as.code_challenge_methods_supported, ['S256']);
  assert.equal(as.authorization_response_iss_parameter_supported, true);
  const prA = await (await fetch(`${gw.base}/.well-known/oauth-protected-resource/mcp/a`)).json();
  assert.equal(prA.resource, `${gw.base}/mcp/a`);

  // 2. The whole flow; the pages carry their security headers.
  const client = await register(gw);
  const { challenge } = pkce();
  const first = await fetch(authorizeUrl(gw, { client_id: client.client_id, challenge }));
  assert.equal(first.status, 200);
  assert.match(first.headers.get('content-security-policy'), /frame-ancestors 'none'/);
  assert.equal(first.headers.get('x-frame-options'), 'DENY');
  assert.equal(first.headers.get('cache-control'), 'no-store');
  const tok = await fullFlow(gw, { client });
  assert.equal(tok.token_type, 'Bearer');
  assert.equal(tok.scope, 'mcp');
  assert.ok(tok.refresh_token);

  // 3. /mcp with the token.
  const init = await mcpInit(gw.url, tok.access_token);
  assert.equal(init.status, 200, init.text);
  const sid = init.headers['mcp-session-id'];
  const list = await mcpCall(gw.url, tok.access_token, sid, 'tools/list');
  assert.equal(list.status, 200, list.text);

  // 4. Refresh rotates; replaying the old one revokes the grant.
  const r1 = await token(gw, { grant_type: 'refresh_token', refresh_token: tok.refresh_token, client_id: client.client_id });
  assert.equal(r1.status, 200, JSON.stringify(r1.json));
  assert.notEqual(r1.json.refresh_token, tok.refresh_token);
  const replay = await token(gw, { grant_type: 'refresh_token', refresh_token: tok.refresh_token, client_id: client.client_id });
  assert.equal(replay.status, 400);
  assert.equal(replay.json.error, 'invalid_grant');
  assert.equal(replay.json.error_description, 'refresh token was already used; all tokens of this grant are revoked');
  const after = await token(gw, { grant_type: 'refresh_token', refresh_token: r1.json.refresh_token, client_id: client.client_id });
  assert.equal(after.status, 400, 'the rotated token died with its family');

  // 5. Nothing secret in the log.
  const log = gw.tail(100000);
  for (const s of [tok.access_token, tok.refresh_token, r1.json.refresh_token, tok.code, PASSWORD]) assert.ok(!log.includes(s), 'a secret leaked into the log');
});

test('oauth: sessions are bound to their user; a token for /mcp/a is refused at /mcp', async (t) => {
  const gw = await startAuthGateway(t);
  const alice = await fullFlow(gw);
  const bob = await fullFlow(gw, { user: 'bob' });
  const init = await mcpInit(gw.url, alice.access_token);
  const sid = init.headers['mcp-session-id'];
  const stolen = await mcpCall(gw.url, bob.access_token, sid, 'tools/list');
  assert.equal(stolen.status, 404, stolen.text);
  const mine = await mcpCall(gw.url, alice.access_token, sid, 'tools/list');
  assert.equal(mine.status, 200);

  const forA = await fullFlow(gw, { resource: `${gw.base}/mcp/a` });
  assert.equal((await mcpInit(`${gw.base}/mcp/a`, forA.access_token)).status, 200);
  const wrong = await mcpInit(gw.url, forA.access_token);
  assert.equal(wrong.status, 401);
  assert.match(wrong.headers['www-authenticate'], /error="invalid_token"/);
  assert.match(wrong.json.error_description, /aud|audience/i);
});

test('oauth: client_credentials for a per-user client, then revoke --user cuts it off at once', async (t) => {
  // Two workers, each with its own store connection: the revocation comes from another process
  // and every worker must see it at once.
  const gw = await startAuthGateway(t);
  const { id, secret } = createUserClient(gw.configFile, 'alice');
  const r = await token(gw, { grant_type: 'client_credentials', resource: `${gw.base}/mcp` }, { basic: [id, secret] });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.refresh_token, undefined);
  const init = await mcpInit(gw.url, r.json.access_token);
  assert.equal(init.status, 200, init.text);
  const bad = await token(gw, { grant_type: 'client_credentials' }, { basic: [id, 'wrong'] });
  assert.equal(bad.status, 401);
  assert.equal(bad.json.error, 'invalid_client');
  await new Promise((r) => setTimeout(r, 1100)); // tokens_valid_after has a one-second grain
  gw.cli(['revoke', '--user', 'alice']);
  const sid = init.headers['mcp-session-id'];
  const denied = await mcpCall(gw.url, r.json.access_token, sid, 'tools/list');
  assert.equal(denied.status, 401, denied.text);
  assert.ok(!gw.tail(100000).includes(secret));
});
