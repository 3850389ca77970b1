// Client certificates for service accounts (a listener's tls.client_ca, auth.client_certificates).
// Every certificate is made at test time with the openssl CLI: a CA, the server's certificate,
// client certificates from that CA (mapped by subject, mapped by URI subjectAltName, unmapped,
// mapped to an account that does not exist, expired) and one from another CA with the mapped
// subject. The identity a certificate gives is checked through the session binding: a session
// opened with the certificate continues with an API key of the same service account and is
// unknown (404) to another account's key.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import path from 'node:path';
import { test } from 'node:test';
import { BIN, JSON_HEADERS, PROTOCOL, baseConfig, miniServer, parseBody, sleep, startGateway, tempDir, withTimeout, writeConfig } from './lib.mjs';

const DIR = tempDir();
process.on('exit', () => fs.rmSync(DIR, { recursive: true, force: true }));
const f = (n) => path.join(DIR, n);

function ossl(args) {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 20000, cwd: DIR });
}

function makeCA(name, cn) {
  ossl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.crt`), '-days', '3', '-subj', `/CN=${cn}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return { cert: f(`${name}.crt`), key: f(`${name}.key`) };
}

/** A client certificate signed by ca; san e.g. 'URI:spiffe://example.org/ci'. */
function makeClient(name, ca, subj, { san, expired = false, start, end } = {}) {
  ossl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', subj]);
  const ext = f(`${name}.ext`);
  fs.writeFileSync(ext, `basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n${san ? `subjectAltName=${san}\n` : ''}`);
  if (expired) [start, end] = ['20200101000000Z', '20200102000000Z'];
  if (!start) {
    ossl(['x509', '-req', '-in', f(`${name}.csr`), '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', f(`${name}.crt`), '-days', '2', '-extfile', ext]);
  } else {
    // `openssl ca` can set both dates (an expired certificate: one day in 2020)
    const db = f(`${name}-db`);
    fs.mkdirSync(db, { recursive: true });
    fs.writeFileSync(path.join(db, 'index.txt'), '');
    fs.writeFileSync(path.join(db, 'serial'), '1000\n');
    const cnf = f(`${name}.cnf`);
    fs.writeFileSync(
      cnf,
      `[ca]\ndefault_ca=d\n[d]\ndatabase=${db}/index.txt\nnew_certs_dir=${db}\nserial=${db}/serial\ndefault_md=sha256\npolicy=p\nunique_subject=no\n[p]\norganizationName=optional\ncommonName=supplied\n[x]\nbasicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n`,
    );
    ossl(['ca', '-batch', '-config', cnf, '-cert', ca.cert, '-keyfile', ca.key, '-in', f(`${name}.csr`), '-out', f(`${name}.crt`), '-startdate', start, '-enddate', end, '-extensions', 'x', '-notext']);
  }
  return { cert: fs.readFileSync(f(`${name}.crt`)), key: fs.readFileSync(f(`${name}.key`)) };
}

const CA = makeCA('ca', 'Gatehouse Test Client CA');
const OTHER_CA = makeCA('other-ca', 'Some Other CA');
ossl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('server.key'), '-out', f('server.crt'), '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost']);
const SERVER_PEM = fs.readFileSync(f('server.crt'));
const CI = makeClient('ci', CA, '/O=Example/CN=ci-bot');
const SPIFFE = makeClient('spiffe', CA, '/CN=workload', { san: 'URI:spiffe://example.org/deployer' });
const STRANGER = makeClient('stranger', CA, '/O=Example/CN=stranger');
const GHOST = makeClient('ghost', CA, '/CN=ghost');
const EXPIRED = makeClient('expired', CA, '/O=Example/CN=ci-bot', { expired: true });
const FOREIGN = makeClient('foreign', OTHER_CA, '/O=Example/CN=ci-bot');

function gh(config, args) {
  const r = spawnSync(BIN, [...args, '-c', config], { cwd: DIR, encoding: 'utf8', timeout: 20000 });
  assert.equal(r.status, 0, `gatehouse ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout.trim();
}

function post(port, body, { client, session, headers = {}, agent = false } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...JSON_HEADERS, 'MCP-Protocol-Version': PROTOCOL, ...headers, 'Content-Length': Buffer.byteLength(body) };
    if (session) h['Mcp-Session-Id'] = session;
    const req = https.request(
      { host: '127.0.0.1', port, path: '/mcp', method: 'POST', headers: h, ca: SERVER_PEM, servername: 'localhost', agent, cert: client?.cert, key: client?.key },
      (res) => {
        const reused = req.reusedSocket;
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode, headers: res.headers, text, json: parseBody(res.headers['content-type'], text), reused });
        });
      },
    );
    req.setTimeout(15000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

const INIT = JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: 'mtls', version: '1' } } });
const LIST = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' });

async function setup(t, extra = {}) {
  const dir = tempDir();
  const config = baseConfig({
    listen: [{ address: '127.0.0.1', port: 0, tls: { cert: f('server.crt'), key: f('server.key'), client_ca: CA.cert } }],
    servers: [miniServer('a')],
    store: { sqlite: path.join(dir, 'gh.db') },
    auth: {
      client_certificates: [
        { subject: 'CN=ci-bot,O=Example', account: 'ci-bot' },
        { uri: 'spiffe://example.org/deployer', account: 'deployer' },
        { subject: 'CN=ghost', account: 'nobody-here' },
      ],
    },
    ...extra,
  });
  const gw = await startGateway(config, { t, dir });
  for (const a of ['ci-bot', 'deployer']) gh(gw.configFile, ['account', 'add', a]);
  const ciKey = gh(gw.configFile, ['apikey', 'create', '--account', 'ci-bot']);
  const deployerKey = gh(gw.configFile, ['apikey', 'create', '--account', 'deployer']);
  return { gw, ciKey, deployerKey };
}

function assertRefused(r, cause) {
  assert.equal(r.status, 401, `${r.status} ${r.text}`);
  const www = r.headers['www-authenticate'] ?? '';
  assert.match(www, /^Bearer resource_metadata="https:\/\/127\.0\.0\.1:\d+\/\.well-known\/oauth-protected-resource\/mcp"/, www);
  assert.match(www, /error="invalid_token"/, www);
  assert.match(www, cause, www);
  assert.equal(r.json?.error, 'invalid_token', r.text);
  assert.match(r.json?.error_description ?? '', cause, r.text);
}

test('a verified client certificate authenticates as the service account it maps to (subject or URI SAN); no certificate and no token is 401', async (t) => {
  const { gw, ciKey, deployerKey } = await setup(t);
  try {
    // no certificate, no token: the usual 401 (the certificate is requested, not required)
    const none = await post(gw.port, INIT);
    assert.equal(none.status, 401, none.text);
    assert.match(none.headers['www-authenticate'], /^Bearer resource_metadata=/);

    // by subject: the session belongs to ci-bot
    const init = await post(gw.port, INIT, { client: CI });
    assert.equal(init.status, 200, init.text);
    const sid = init.headers['mcp-session-id'];
    assert.ok(sid);
    const list = await post(gw.port, LIST, { client: CI, session: sid });
    assert.equal(list.status, 200, list.text);
    assert.ok(list.json.result.tools.length > 0);
    // ci-bot's API key continues the session (the same principal); deployer's does not know it
    const same = await post(gw.port, LIST, { session: sid, headers: { Authorization: `Bearer ${ciKey}` } });
    assert.equal(same.status, 200, same.text);
    const other = await post(gw.port, LIST, { session: sid, headers: { Authorization: `Bearer ${deployerKey}` } });
    assert.equal(other.status, 404, other.text);

    // by URI subjectAltName: deployer
    const init2 = await post(gw.port, INIT, { client: SPIFFE });
    assert.equal(init2.status, 200, init2.text);
    const sid2 = init2.headers['mcp-session-id'];
    assert.equal((await post(gw.port, LIST, { session: sid2, headers: { Authorization: `Bearer ${deployerKey}` } })).status, 200);
    assert.equal((await post(gw.port, LIST, { session: sid2, headers: { Authorization: `Bearer ${ciKey}` } })).status, 404);

    // a bearer token wins over the certificate: deployer's key with ci-bot's certificate is deployer
    const both = await post(gw.port, INIT, { client: CI, headers: { Authorization: `Bearer ${deployerKey}` } });
    assert.equal(both.status, 200, both.text);
    assert.equal((await post(gw.port, LIST, { session: both.headers['mcp-session-id'], headers: { Authorization: `Bearer ${deployerKey}` } })).status, 200);
  } finally {
    await gw.stop();
  }
});

test('an expired certificate, one from another CA, an unmapped one and one mapped to a missing account are refused with 401 naming the cause', async (t) => {
  const { gw } = await setup(t);
  try {
    assertRefused(await post(gw.port, INIT, { client: EXPIRED }), /client certificate .CN=ci-bot,O=Example. is not valid: certificate has expired/);
    assertRefused(await post(gw.port, INIT, { client: FOREIGN }), /client certificate .CN=ci-bot,O=Example. is not valid: unable to get local issuer certificate \(not issued by a CA in the listener's tls.client_ca\)/);
    assertRefused(await post(gw.port, INIT, { client: STRANGER }), /client certificate .CN=stranger,O=Example. is valid but maps to no service account/);
    assertRefused(await post(gw.port, INIT, { client: GHOST }), /maps to service account .nobody-here. \(auth.client_certificates\), which does not exist/);
    // the same refusals on a server's own path
    const r = await new Promise((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port: gw.port, path: '/mcp/a', method: 'POST', headers: { ...JSON_HEADERS, 'Content-Length': INIT.length }, ca: SERVER_PEM, servername: 'localhost', agent: false, cert: FOREIGN.cert, key: FOREIGN.key }, (res) => {
        res.resume();
        res.on('end', () => resolve(res));
      });
      req.on('error', reject);
      req.end(INIT);
    });
    assert.equal(r.statusCode, 401);
    assert.match(r.headers['www-authenticate'], /oauth-protected-resource\/mcp\/a"/);
    // no private key material in the log
    const log = gw.logText();
    for (const k of [CI.key, EXPIRED.key, FOREIGN.key]) assert.ok(!log.includes(k.toString().split('\n')[1]), 'a client key in the log');
    assert.ok(!/PRIVATE KEY/.test(log));
  } finally {
    await gw.stop();
  }
});

/** openssl ca's date notation for t (ms since the epoch). */
const caDate = (t) => new Date(t).toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');

test('a certificate that expires during a kept-alive connection is refused from then on', async (t) => {
  const { gw } = await setup(t);
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const end = Date.now() + 6000;
    const short = makeClient('short', CA, '/O=Example/CN=ci-bot', { start: caDate(Date.now() - 3600e3), end: caDate(end) });
    const first = await post(gw.port, INIT, { client: short, agent });
    assert.equal(first.status, 200, first.text);
    await sleep(Math.max(0, end - Date.now()) + 1500);
    const second = await post(gw.port, INIT, { client: short, agent });
    assert.equal(second.reused, true, 'the second request went out on a new connection');
    assertRefused(second, /client certificate .CN=ci-bot,O=Example. is not valid: certificate has expired \(during this connection\)/);
  } finally {
    agent.destroy();
    await gw.stop();
  }
});

test('a client certificate authenticates over HTTP/2 too', async (t) => {
  const { gw } = await setup(t, { http2: true });
  let c;
  try {
    c = await withTimeout(
      new Promise((resolve, reject) => {
        const s = http2.connect(`https://127.0.0.1:${gw.port}`, { ca: SERVER_PEM, servername: 'localhost', cert: CI.cert, key: CI.key });
        s.once('connect', () => resolve(s));
        s.once('error', reject);
      }),
      5000,
      'HTTP/2 connect',
    );
    assert.equal(c.alpnProtocol, 'h2');
    const ask = (body) =>
      withTimeout(
        new Promise((resolve, reject) => {
          const r = c.request({ ':method': 'POST', ':path': '/mcp', ...JSON_HEADERS, 'mcp-protocol-version': PROTOCOL });
          let status;
          let text = '';
          r.on('response', (h) => (status = h[':status']));
          r.on('data', (d) => (text += d));
          r.on('end', () => resolve({ status, text }));
          r.on('error', reject);
          r.end(body);
        }),
        10000,
        'HTTP/2 request',
      );
    const init = await ask(INIT);
    assert.equal(init.status, 200, init.text);
  } finally {
    c?.close();
    await gw.stop();
  }
});

test('tls.client_ca without authentication is refused at load', async () => {
  const file = writeConfig({ listen: [{ port: 0, tls: { cert: f('server.crt'), key: f('server.key'), client_ca: CA.cert } }] });
  const r = spawnSync(BIN, ['check-config', file], { encoding: 'utf8' });
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stdout + r.stderr, /tls\.client_ca but authentication is off/);
});
