// The organisation's identity provider for the SSO tests: fixtures/idp.mjs (oidc-provider) as a
// tracked child process on a loopback port.

import path from 'node:path';
import { INTEROP_DIR, spawnTracked, withTimeout } from './gateway.mjs';

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
