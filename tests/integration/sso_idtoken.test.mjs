// The relying party's id_token checks (OpenID Connect Core §3.1.3.7), each refused end to end:
// the browser goes from /oauth/authorize straight to the one identity provider
// and back to /oauth/sso/callback, where Gatehouse exchanges the code and must refuse the
// id_token with a page that names the cause. The provider is a signed-token FIXTURE
// (fixtures/faulty-idp.mjs) that issues a token wrong in exactly one claim; the happy path with
// a real provider (oidc-provider) is in tests/interop/sso.test.mjs. The first case here checks
// that the fixture's correct token is accepted, so each refusal is due to its one fault.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';
import { startFaultyIdp } from './fixtures/faulty-idp.mjs';
import { Browser, startAuthGateway } from './oauth_lib.mjs';

const isClientCallback = (u) => u.startsWith('http://127.0.0.1:9/');

async function authorizeUrl(gw) {
  const reg = await fetch(`${gw.base}/oauth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: 'id_token test', redirect_uris: ['http://127.0.0.1:9/cb'], token_endpoint_auth_method: 'none' }),
  }).then((r) => r.json());
  const challenge = crypto.createHash('sha256').update(crypto.randomBytes(32).toString('base64url')).digest('base64url');
  const u = new URL(`${gw.base}/oauth/authorize`);
  for (const [k, v] of Object.entries({ response_type: 'code', client_id: reg.client_id, redirect_uri: 'http://127.0.0.1:9/cb', code_challenge: challenge, code_challenge_method: 'S256', resource: `${gw.base}/mcp`, state: 's' })) u.searchParams.set(k, v);
  return u.toString();
}

/** Sign in through the provider; the page Gatehouse shows after its callback. */
async function signIn(gw) {
  // With one provider and no password form, /oauth/authorize sends the browser straight to it
  // (the fixture approves at once), and on to the page Gatehouse shows after its callback.
  const browser = new Browser();
  const r = await browser.follow(await authorizeUrl(gw), {}, isClientCallback);
  assert.ok(r.page, `went to the client: ${r.location}`);
  assert.doesNotMatch(r.page.url, /\/oauth\/authorize/, 'the login page was shown, not the provider');
  return r.page;
}

const unescape = (s) => s.replace(/&quot;/g, '"').replace(/&amp;/g, '&').replace(/&#39;/g, "'");

test('SSO id_token: each faulty claim is refused with its cause', async (t) => {
  const idp = await startFaultyIdp();
  t.after(() => idp.stop());
  const gw = await startAuthGateway(t, {
    users: [],
    auth: { login: { local: false, providers: [{ name: 'corp', issuer: idp.issuer, client_id: idp.client_id }] } },
  });

  // The fixture's own token passes: the consent page, signed in as its user.
  idp.fault = null;
  let page = await signIn(gw);
  assert.equal(page.status, 200, page.text.slice(0, 400));
  assert.match(page.text, /Signed in as <strong>fixture-user<\/strong>/);

  const now = () => Math.floor(Date.now() / 1000);
  const cases = [
    ['iss', (c) => (c.iss = 'https://evil.example'), /its issuer is "https:\/\/evil\.example", not http:\/\/127\.0\.0\.1/],
    ['iss (absent)', (c) => delete c.iss, /its issuer is "\(none\)"/],
    ['aud', (c) => (c.aud = 'another-client'), /its audience does not include our client_id "gatehouse-rp"/],
    ['aud (list without us)', (c) => (c.aud = ['another-client', 'third']), /its audience does not include our client_id/],
    ['azp (several audiences, no azp)', (c) => (c.aud = ['gatehouse-rp', 'another-client']), /its authorized party \(azp\) is not our client_id/],
    ['azp (foreign)', (c) => (c.azp = 'another-client'), /its authorized party \(azp\) is not our client_id/],
    ['exp (absent)', (c) => delete c.exp, /it has no exp claim/],
    ['exp (past the leeway)', (c) => ((c.exp = now() - 120), (c.iat = now() - 420)), /it expired at \d+/],
    ['iat (in the future)', (c) => ((c.iat = now() + 600), (c.exp = now() + 900)), /it was issued in the future \(iat \d+\)/],
    ['nonce (another login\'s)', (c) => (c.nonce = crypto.randomBytes(32).toString('base64url')), /its nonce does not match the one this login sent/],
    ['nonce (absent)', (c) => delete c.nonce, /its nonce does not match/],
    ['sub (empty)', (c) => (c.sub = ''), /it has no usable sub claim/],
    ['sub (absent)', (c) => delete c.sub, /it has no usable sub claim/],
    ['sub (too long)', (c) => (c.sub = 's'.repeat(256)), /it has no usable sub claim/],
  ];
  for (const [name, fault, cause] of cases) {
    idp.fault = fault;
    page = await signIn(gw);
    const text = unescape(page.text);
    assert.equal(page.status, 403, `${name}: ${text.slice(0, 400)}`);
    assert.match(text, /the id_token from provider "corp" was refused: /, name);
    assert.match(text, cause, name);
    assert.doesNotMatch(text, /Signed in as/, name);
  }
  // Nobody was created by a refused token; the one good login made one user.
  const list = JSON.parse(gw.cli(['user', 'list', '--json']));
  assert.deepEqual(list.map((u) => u.name), ['fixture-user']);
});
