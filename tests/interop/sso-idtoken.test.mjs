// The relying party's id_token checks against a REAL identity provider (oidc-provider,
// fixtures/idp.mjs) configured to misbehave in the ways a real one can: a clock that is behind
// (with a short id_token lifetime, its tokens arrive expired: exp), a clock that is ahead (they
// are issued in the future: iat), and an account whose subject is longer than Gatehouse accepts
// (sub). The faults a real provider cannot be made to commit (a foreign iss, aud or azp, a wrong
// nonce) are covered with a signed-token fixture in tests/integration/sso_idtoken.test.mjs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Browser, startAuthGateway } from '../integration/oauth_lib.mjs';
import { freePort } from './lib/gateway.mjs';
import { idpLogin } from './lib/browser.mjs';
import { startIdp } from './lib/idp.mjs';

const isClientCallback = (u) => u.startsWith('http://127.0.0.1:9/');

async function startSso(t, idpOptions) {
  const port = await freePort('127.0.0.1');
  const base = `http://127.0.0.1:${port}`;
  const dir = fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'gatehouse-sso-'));
  const secretFile = path.join(dir, 'idp-secret');
  fs.writeFileSync(secretFile, `idp-secret-${crypto.randomBytes(18).toString('base64url')}\n`, { mode: 0o600 });
  const idp = await startIdp({ redirectUri: `${base}/oauth/sso/callback`, secretFile, ...idpOptions });
  t.after(() => idp.stop());
  const gw = await startAuthGateway(t, {
    users: [],
    extra: { listen: [{ address: '127.0.0.1', port }] },
    auth: { login: { local: false, providers: [{ name: 'corp', issuer: idp.issuer, client_id: idp.client_id, client_secret_file: secretFile }] } },
  });
  return gw;
}

/** From a new authorization request through the IdP's login to the page Gatehouse shows after
    its callback. */
async function signIn(gw, account) {
  const reg = await fetch(`${gw.base}/oauth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: 'id_token test', redirect_uris: ['http://127.0.0.1:9/cb'], token_endpoint_auth_method: 'none' }),
  }).then((r) => r.json());
  const u = new URL(`${gw.base}/oauth/authorize`);
  const challenge = crypto.createHash('sha256').update(crypto.randomBytes(32).toString('base64url')).digest('base64url');
  for (const [k, v] of Object.entries({ response_type: 'code', client_id: reg.client_id, redirect_uri: 'http://127.0.0.1:9/cb', code_challenge: challenge, code_challenge_method: 'S256', resource: `${gw.base}/mcp`, state: 's' })) u.searchParams.set(k, v);
  // With one provider and no password form, /oauth/authorize sends the browser straight to it.
  const browser = new Browser();
  const start = u.toString();
  const answer = await idpLogin(browser, start, account, (x) => x.startsWith(`${gw.base}/oauth/sso/callback`));
  return (await browser.follow(answer, {}, isClientCallback)).page;
}

const text = (page) => page.text.replace(/&quot;/g, '"').replace(/&amp;/g, '&');

test('SSO id_token (real IdP): a provider whose clock is behind sends expired id_tokens (exp)', async (t) => {
  const gw = await startSso(t, { clockSkew: -600, idTokenTtl: 300 });
  const page = await signIn(gw, 'alice');
  assert.equal(page.status, 403, page.text.slice(0, 400));
  assert.match(text(page), /the id_token from provider "corp" was refused: it expired at \d+/);
});

test('SSO id_token (real IdP): a provider whose clock is ahead issues id_tokens in the future (iat)', async (t) => {
  const gw = await startSso(t, { clockSkew: 600 });
  const page = await signIn(gw, 'alice');
  assert.equal(page.status, 403, page.text.slice(0, 400));
  assert.match(text(page), /the id_token from provider "corp" was refused: it was issued in the future \(iat \d+\)/);
});

test('SSO id_token (real IdP): a subject longer than 255 characters is refused (sub), a normal one passes', async (t) => {
  const gw = await startSso(t, {});
  let page = await signIn(gw, 'x'.repeat(300));
  assert.equal(page.status, 403, page.text.slice(0, 400));
  assert.match(text(page), /the id_token from provider "corp" was refused: it has no usable sub claim/);
  page = await signIn(gw, 'alice');
  assert.equal(page.status, 200, page.text.slice(0, 400));
  assert.match(page.text, /Signed in as <strong>alice<\/strong>/);
});
