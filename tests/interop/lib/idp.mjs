// The organisation's identity provider for the SSO tests: fixtures/idp.mjs (oidc-provider) as a
// tracked child process on a loopback port.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startAuthGateway } from '../../integration/oauth_lib.mjs';
import { INTEROP_DIR, freePort, spawnTracked, withTimeout } from './gateway.mjs';

const IDP = path.join(INTEROP_DIR, 'fixtures', 'idp.mjs');

/** Start the IdP with one confidential client whose redirect URI is `redirectUri` and whose
    secret is in `secretFile`; resolves { issuer, client_id, logs(), stop() }. `clockSkew`
    (seconds) runs it on a wrong clock; `idTokenTtl` (seconds) sets its id_token lifetime. */
export async function startIdp({ redirectUri, secretFile, clockSkew = 0, idTokenTtl }) {
  const extra = [...(clockSkew ? [`--clock-skew=${clockSkew}`] : []), ...(idTokenTtl ? [`--id-token-ttl=${idTokenTtl}`] : [])];
  const proc = spawnTracked(process.execPath, [IDP, '--redirect-uri', redirectUri, '--client-secret-file', secretFile, ...extra], { name: 'idp', stdin: 'pipe' });
  const info = await withTimeout(
    new Promise((resolve, reject) => {
      proc.onLine((line) => {
        if (line.startsWith('{')) resolve(JSON.parse(line));
      });
      proc.exited.then(({ code }) => reject(new Error(`the IdP exited (${code})\n${proc.logs()}`)));
    }),
    15000,
    'the IdP to listen',
  );
  return { issuer: info.issuer, client_id: info.client_id, logs: proc.logs, stop: () => proc.stop() };
}

/** An IdP and a gateway (servers a and b) whose sign-in is provider "corp" at that IdP, and the
    local password form only with `local: true` (then with users alice and bob). `provider`
    adds keys to corp's entry; `tls` ({cert, key}) makes the listener https. Resolves
    { gw, idp, secret } (the IdP's client secret, to look for in logs). */
export async function startSsoGateway(t, { provider = {}, local = false, tls } = {}) {
  const port = await freePort('127.0.0.1');
  const base = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const dir = fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'gatehouse-sso-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const secret = `idp-secret-${crypto.randomBytes(18).toString('base64url')}`;
  const secretFile = path.join(dir, 'idp-secret');
  fs.writeFileSync(secretFile, `${secret}\n`, { mode: 0o600 });
  const idp = await startIdp({ redirectUri: `${base}/oauth/sso/callback`, secretFile });
  t.after(() => idp.stop());
  const gw = await startAuthGateway(t, {
    users: local ? ['alice', 'bob'] : [],
    extra: { listen: [{ address: '127.0.0.1', port, ...(tls ? { tls } : {}) }] },
    auth: {
      login: {
        local,
        providers: [{ name: 'corp', issuer: idp.issuer, client_id: idp.client_id, client_secret_file: secretFile, scopes: ['openid', 'profile', 'email', 'groups'], groups_claim: 'groups', ...provider }],
      },
    },
  });
  assert.equal(gw.base, base);
  return { gw, idp, secret };
}
