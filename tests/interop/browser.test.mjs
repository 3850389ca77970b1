// The page flows in a real browser: Debian's Chromium driven by playwright-core (lib/chromium.mjs).
// A scripted HTTP walk sends whatever headers it likes and ignores cookie attributes; Chromium
// does not. Here it walks:
//   - the official SDK v1 client's authorization: the SDK registers (DCR), Chromium opens the
//     authorization URL, signs in on the local password form and consents, the SDK finishes and
//     lists tools; the login form is single-use (a replayed POST does not sign in again);
//   - the refusals a browser can provoke: a form posted from another origin, from a page whose
//     referrer policy hides its origin (Origin: null), with a wrong or missing CSRF token;
//   - single sign-on through a real OpenID provider (oidc-provider) and then the gateway's
//     consent page; a login page that offers only that provider sends the browser straight to it,
//     one that offers the password form as well shows the provider as a button;
//   - the cookies as Chromium keeps them: HttpOnly, SameSite=Lax, host-only, Path=/, over plain
//     HTTP without Secure and without the __Host- prefix, over TLS with both.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PASSWORD, startAuthGateway } from '../integration/oauth_lib.mjs';
import { tempDir } from '../integration/lib.mjs';
import { startSsoGateway } from './lib/idp.mjs';
import { STEP_MS, clickAndWait, lastPostHeaders, launchChromium, newProfile, startCallback, startSite, text } from './lib/chromium.mjs';
import { MemoryProvider, sdkAuthorize, sdkConnect } from './lib/oauth.mjs';

const LOGIN_BUTTON = 'form[action="/oauth/login"] button[type=submit]';
// A whole test: above the sum of its bounded waits (Chromium 30 s to start, the gateway 20 s, the
// IdP 15 s, a dozen steps of STEP_MS at most in the longest), so a stuck step fails as itself.
const TEST_MS = 240000;

/** On Gatehouse's login page: type the user name and password and press Sign in. */
async function signIn(page, user = 'alice', password = PASSWORD) {
  assert.equal(await page.title(), 'Sign in', await text(page));
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', password);
  return clickAndWait(page, LOGIN_BUTTON);
}

/** Where the page is, and what it says, for assertion messages. */
async function where(page) {
  return `${page.url()}\n${(await text(page)).slice(0, 500)}`;
}

/** On Gatehouse's consent page: press Allow; resolves the client callback's parameters. */
async function allow(page, cb) {
  assert.equal(await page.title(), 'Allow access?', await where(page));
  const [params] = await Promise.all([cb.next(), page.click('#approve button', { timeout: STEP_MS })]);
  return params;
}

/** The Set-Cookie header of the response to the last request to a URL containing `part`. */
async function setCookieOf(requests, part) {
  const r = requests.filter((x) => x.url().includes(part)).at(-1);
  assert.ok(r, `no request to ${part}`);
  const res = await r.response();
  return (await res?.headerValue('set-cookie')) ?? '';
}

test('Chromium: the SDK client registers, the user signs in and consents, the client lists tools; the login form is single-use', { timeout: TEST_MS }, async (t) => {
  const gw = await startAuthGateway(t);
  const browser = await launchChromium(t);
  const ctx = await newProfile(browser);
  const requests = [];
  ctx.on('request', (r) => requests.push(r));
  const page = await ctx.newPage();
  const cb = await startCallback(t);
  const provider = new MemoryProvider({ redirectUrl: cb.url });
  let replay;

  const params = await sdkAuthorize(gw.url, provider, async (au) => {
    assert.match(provider.saved.client.client_id, /^dcr_/);
    const res = await page.goto(au.toString());
    assert.equal(res.status(), 200, await where(page));
    assert.equal(res.headers()['referrer-policy'], 'same-origin');
    await signIn(page);
    // Chromium posted the form with the page's own origin, and the gateway took it.
    assert.equal((await lastPostHeaders(ctx, '/oauth/login')).origin, gw.base);
    assert.equal(new URL(page.url()).pathname, '/oauth/consent', await where(page));
    replay = ctx.posts.filter((r) => r.url().includes('/oauth/login')).at(-1).postData();

    // The session cookie as Chromium keeps it: plain HTTP, so no Secure and no __Host- prefix.
    const setCookie = await setCookieOf(requests, '/oauth/login');
    assert.match(setCookie, /^gh_login=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax$/, setCookie);
    const cookies = await ctx.cookies(gw.base);
    const login = cookies.find((c) => c.name === 'gh_login');
    assert.ok(login, JSON.stringify(cookies));
    assert.deepEqual([login.httpOnly, login.secure, login.sameSite, login.path, login.domain], [true, false, 'Lax', '/', '127.0.0.1']);
    assert.equal(await page.evaluate(() => document.cookie), '', 'a script on the page can read the session cookie');

    // A replay of the same sign-in form does not sign in again.
    const again = await fetch(`${gw.base}/oauth/login`, {
      method: 'POST',
      headers: { origin: gw.base, 'content-type': 'application/x-www-form-urlencoded' },
      body: replay,
      redirect: 'manual',
      signal: AbortSignal.timeout(STEP_MS),
    });
    const body = await again.text();
    assert.equal(again.status, 403, body);
    assert.equal(again.headers.get('set-cookie'), null);
    assert.match(body, /this sign-in form was already used/);

    const got = await allow(page, cb);
    assert.equal((await lastPostHeaders(ctx, '/oauth/consent')).origin, gw.base);
    return got;
  });
  assert.equal(params.get('iss'), gw.base);
  const client = await sdkConnect(gw.url, provider);
  const tools = await client.listTools();
  assert.ok(tools.tools.some((x) => x.name === 'a__tool'), JSON.stringify(tools.tools.map((x) => x.name)));
  await client.close();
  assert.equal((await gw.stop()).code, 0, 'the gateway did not exit cleanly (under ASan: a leak)');
});

/** A pending authorization request in Chromium: the first page for a freshly registered client
    (registered through the profile's own request context, which trusts what Chromium trusts). */
async function loginPageFor(gw, page, redirectUri = 'http://127.0.0.1:9/oauth/callback') {
  const r = await page.context().request.post(`${gw.base}/oauth/register`, {
    data: { client_name: 'Browser test', redirect_uris: [redirectUri], token_endpoint_auth_method: 'none' },
  });
  assert.equal(r.status(), 201, await r.text());
  const reg = await r.json();
  const challenge = crypto.createHash('sha256').update(crypto.randomBytes(32).toString('base64url')).digest('base64url');
  const u = new URL(`${gw.base}/oauth/authorize`);
  const q = { response_type: 'code', client_id: reg.client_id, redirect_uri: redirectUri, code_challenge: challenge, code_challenge_method: 'S256', resource: `${gw.base}/mcp`, state: 's' };
  for (const [k, v] of Object.entries(q)) u.searchParams.set(k, v);
  const res = await page.goto(u.toString());
  assert.ok(res.ok(), await where(page));
  return page;
}

/** A page on another site holding `fields` in a form that posts to `action` (no script). */
function formPage(action, fields, { meta = '' } = {}) {
  const inputs = Object.entries(fields).map(([k, v]) => `<input type="hidden" name="${k}" value="${v}">`).join('');
  return `<!doctype html><html><head>${meta}<title>Win a prize</title></head><body><form method="post" action="${action}">${inputs}<button type="submit">Claim</button></form></body></html>`;
}

test('Chromium: sign-in and consent posts from another origin, with Origin null, or with a wrong or missing CSRF token are refused, each with its cause', { timeout: TEST_MS }, async (t) => {
  const gw = await startAuthGateway(t);
  const browser = await launchChromium(t);
  const ctx = await newProfile(browser);
  const page = await ctx.newPage();
  const cb = await startCallback(t);

  // The attacker's pages hold the fields of a real form, read from a real login page.
  await loginPageFor(gw, page, cb.url);
  const fields = { authz: await page.inputValue('input[name=authz]'), csrf: await page.inputValue('input[name=csrf]'), username: 'alice', password: PASSWORD };
  let forms = {};
  const site = await startSite(t, (p) => forms[p]);
  forms['/login'] = formPage(`${gw.base}/oauth/login`, fields);
  forms['/login-null'] = formPage(`${gw.base}/oauth/login`, fields, { meta: '<meta name="referrer" content="no-referrer">' });

  const attacker = await ctx.newPage();
  await attacker.goto(`${site}/login`);
  let res = await clickAndWait(attacker, 'button');
  assert.equal(res.status(), 403, await where(attacker));
  assert.equal((await lastPostHeaders(ctx, '/oauth/login')).origin, site);
  assert.match(await text(attacker), new RegExp(`this form was posted from another site \\(Origin ${site}\\); forms are accepted only from ${gw.base}`));

  await attacker.goto(`${site}/login-null`);
  res = await clickAndWait(attacker, 'button');
  assert.equal(res.status(), 403, await where(attacker));
  assert.equal((await lastPostHeaders(ctx, '/oauth/login')).origin, 'null');
  assert.match(await text(attacker), /the page that posted this form hid its origin \(Origin: null\)/);
  assert.equal((await ctx.cookies(gw.base)).length, 0, 'a refused post signed the browser in');

  // On the real page: a wrong token, then none at all.
  await page.evaluate(() => (document.querySelector('input[name=csrf]').value = 'forged-token'));
  res = await signIn(page);
  assert.equal(res.status(), 403, await where(page));
  assert.match(await text(page), /the sign-in form's CSRF token is unknown, expired or already used/);
  await loginPageFor(gw, page, cb.url);
  await page.evaluate(() => document.querySelector('input[name=csrf]').remove());
  res = await signIn(page);
  assert.equal(res.status(), 400, await where(page));
  assert.match(await text(page), /the sign-in form is incomplete \(authz, csrf\)/);
  assert.equal((await ctx.cookies(gw.base)).length, 0, 'a refused post signed the browser in');

  // Signed in for real; now the consent form.
  await loginPageFor(gw, page, cb.url);
  await signIn(page);
  assert.equal(await page.title(), 'Allow access?', await where(page));
  const consentUrl = page.url();
  const authz = await page.inputValue('#approve input[name=authz]');
  forms = { '/consent': formPage(`${gw.base}/oauth/consent`, { authz, csrf: 'guessed', decision: 'approve' }) };
  await attacker.goto(`${site}/consent`);
  res = await clickAndWait(attacker, 'button');
  assert.equal(res.status(), 403, await where(attacker));
  assert.match(await text(attacker), new RegExp(`this form was posted from another site \\(Origin ${site}\\)`));

  await page.evaluate(() => (document.querySelector('#approve input[name=csrf]').value = 'forged-token'));
  res = await clickAndWait(page, '#approve button');
  assert.equal(res.status(), 403, await where(page));
  assert.match(await text(page), /the consent form's CSRF token is unknown, expired or already used/);
  await page.goto(consentUrl);
  await page.evaluate(() => document.querySelector('#approve input[name=csrf]').remove());
  res = await clickAndWait(page, '#approve button');
  assert.equal(res.status(), 400, await where(page));
  assert.match(await text(page), /the consent form is incomplete \(csrf, decision\)/);

  // None of that spent the request: the real form still works.
  await page.goto(consentUrl);
  const params = await allow(page, cb);
  assert.ok(params.get('code'), String(params));
  assert.equal((await gw.stop()).code, 0, 'the gateway did not exit cleanly (under ASan: a leak)');
});

/** On oidc-provider's development pages (login, then consent) as `account`, until the browser
    is back at the gateway. */
async function atIdp(page, idp, account) {
  for (let step = 0; step < 4 && new URL(page.url()).origin === idp.issuer; step++) {
    if (await page.locator('input[name=login]').count()) {
      await page.fill('input[name=login]', account);
      await page.fill('input[name=password]', 'x');
    }
    await clickAndWait(page, 'button[type=submit]');
  }
  assert.notEqual(new URL(page.url()).origin, idp.issuer, `stuck at the IdP: ${await where(page)}`);
}

test('Chromium: single sign-on through oidc-provider, then the consent page; with only that provider the browser goes straight to it', { timeout: TEST_MS }, async (t) => {
  const { gw, idp, secret } = await startSsoGateway(t);
  const browser = await launchChromium(t);
  const ctx = await newProfile(browser);
  const requests = [];
  ctx.on('request', (r) => requests.push(r));
  const page = await ctx.newPage();
  const cb = await startCallback(t);
  const provider = new MemoryProvider({ redirectUrl: cb.url });
  const params = await sdkAuthorize(gw.url, provider, async (au) => {
    await page.goto(au.toString());
    // Nothing to choose: no login page, the browser is at the provider's.
    assert.equal(new URL(page.url()).origin, idp.issuer, await where(page));
    const setCookie = await setCookieOf(requests, '/oauth/sso/corp');
    assert.match(setCookie, /^gh_sso=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=600; HttpOnly; SameSite=Lax$/, setCookie);
    const sso = (await ctx.cookies(gw.base)).find((c) => c.name === 'gh_sso');
    assert.ok(sso, 'Chromium did not keep the SSO cookie');
    assert.deepEqual([sso.httpOnly, sso.secure, sso.sameSite, sso.path], [true, false, 'Lax', '/']);

    await atIdp(page, idp, 'alice');
    assert.equal(new URL(page.url()).pathname, '/oauth/consent', await where(page));
    assert.match(await text(page), /Signed in as alice\./);
    assert.ok(!(await ctx.cookies(gw.base)).some((c) => c.name === 'gh_sso'), 'the SSO cookie outlived its callback');
    const login = (await ctx.cookies(gw.base)).find((c) => c.name === 'gh_login');
    assert.deepEqual([login?.httpOnly, login?.secure, login?.sameSite, login?.path], [true, false, 'Lax', '/']);
    const got = await allow(page, cb);
    assert.equal((await lastPostHeaders(ctx, '/oauth/consent')).origin, gw.base);
    return got;
  });
  assert.equal(params.get('iss'), gw.base);
  const client = await sdkConnect(gw.url, provider);
  assert.ok((await client.listTools()).tools.some((x) => x.name === 'a__tool'));
  await client.close();
  assert.ok(!gw.tail(100000).includes(secret), 'the IdP client secret is in the gateway log');
  assert.equal((await gw.stop()).code, 0, 'the gateway did not exit cleanly (under ASan: a leak)');
});

/** A self-signed certificate for 127.0.0.1 (openssl CLI) in a temporary directory. */
function certificate(t) {
  const dir = tempDir();
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cert = path.join(dir, 'gw.crt');
  const key = path.join(dir, 'gw.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'pipe', timeout: 15000 });
  return { cert, key };
}

test('Chromium over TLS: __Host- cookies with Secure for the session and the SSO round trip; the login page shows the provider as a button next to the password form', { timeout: TEST_MS }, async (t) => {
  const { gw, idp } = await startSsoGateway(t, { local: true, tls: certificate(t) });
  assert.match(gw.base, /^https:/);
  const browser = await launchChromium(t);
  const cb = await startCallback(t);

  // The password form.
  const ctx = await newProfile(browser, { ignoreHTTPSErrors: true });
  const requests = [];
  ctx.on('request', (r) => requests.push(r));
  const page = await loginPageFor(gw, await ctx.newPage(), cb.url);
  assert.ok(await page.getByRole('button', { name: 'Sign in with corp' }).isVisible(), await where(page));
  await signIn(page);
  assert.equal(new URL(page.url()).pathname, '/oauth/consent', await where(page));
  assert.equal((await lastPostHeaders(ctx, '/oauth/login')).origin, gw.base);
  const setCookie = await setCookieOf(requests, '/oauth/login');
  assert.match(setCookie, /^__Host-gh_login=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax; Secure$/, setCookie);
  let cookies = await ctx.cookies(gw.base);
  const login = cookies.find((c) => c.name === '__Host-gh_login');
  assert.ok(login, `Chromium refused the __Host- cookie: ${JSON.stringify(cookies)}`);
  assert.deepEqual([login.httpOnly, login.secure, login.sameSite, login.path, login.domain], [true, true, 'Lax', '/', '127.0.0.1']);
  assert.ok(!cookies.some((c) => c.name === 'gh_login'));
  assert.ok((await allow(page, cb)).get('code'));

  // The provider's button, in a browser that is not signed in.
  const ctx2 = await newProfile(browser, { ignoreHTTPSErrors: true });
  const page2 = await loginPageFor(gw, await ctx2.newPage(), cb.url);
  await Promise.all([page2.waitForURL((u) => u.origin === idp.issuer, { timeout: STEP_MS }), page2.getByRole('button', { name: 'Sign in with corp' }).click()]);
  cookies = await ctx2.cookies(gw.base);
  const sso = cookies.find((c) => c.name === '__Host-gh_sso');
  assert.ok(sso, `Chromium refused the __Host- SSO cookie: ${JSON.stringify(cookies)}`);
  assert.deepEqual([sso.httpOnly, sso.secure, sso.sameSite, sso.path, sso.domain], [true, true, 'Lax', '/', '127.0.0.1']);
  await atIdp(page2, idp, 'carol'); // not a local user: alice and bob are, and are not taken over
  assert.match(await text(page2), /Signed in as carol\./, await where(page2));
  assert.ok((await ctx2.cookies(gw.base)).some((c) => c.name === '__Host-gh_login'));
  assert.ok((await allow(page2, cb)).get('code'));
  assert.equal((await gw.stop()).code, 0, 'the gateway did not exit cleanly (under ASan: a leak)');
});
