// The TLS policy of the listeners and certificate reload. Certificates are made at test time
// with the openssl CLI; the protocol checks drive Debian's `openssl s_client` (which can still
// offer TLS 1.1 and the old suites when told to) and Node's tls.
//   - TLS 1.1 is refused; 1.2 and 1.3 are served; tls.min_version "1.3" refuses 1.2
//   - on TLS 1.2 only ECDHE + AEAD suites: RSA key exchange and CBC suites are refused (with an
//     RSA certificate, with which OpenSSL's defaults would accept them)
//   - no session resumption (tickets or cache), no renegotiation
//   - SIGHUP reloads the certificate: new connections get the new one, an open keep-alive
//     connection and an open SSE stream go on; a broken or mismatched file keeps the old one
//     and the log names the file

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { test } from 'node:test';
import { JSON_HEADERS, PROTOCOL, baseConfig, miniServer, parseBody, runGatehouse, startGateway, tempDir, until, withTimeout, writeConfig } from './lib.mjs';

const DIR = tempDir();
process.on('exit', () => fs.rmSync(DIR, { recursive: true, force: true }));

function makeCert(name, { kind = 'ec', cn = 'localhost' } = {}) {
  const cert = path.join(DIR, `${name}.crt`);
  const key = path.join(DIR, `${name}.key`);
  const alg = kind === 'ec' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-newkey', 'rsa:2048'];
  execFileSync('openssl', ['req', '-x509', ...alg, '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    timeout: 20000,
  });
  const pem = fs.readFileSync(cert);
  return { cert, key, pem, keyPem: fs.readFileSync(key), fingerprint256: new crypto.X509Certificate(pem).fingerprint256 };
}

const EC = makeCert('ec');
const RSA = makeCert('rsa', { kind: 'rsa' });
const B = makeCert('b', { cn: 'second' });

function tlsGateway(t, c, tlsExtra = {}, extra = {}) {
  return startGateway(baseConfig({ listen: [{ address: '127.0.0.1', port: 0, tls: { cert: c.cert, key: c.key, ...tlsExtra } }], servers: [miniServer('a')], ...extra }), { t });
}

/** openssl s_client with args against port; resolves {ok, out} (ok: a handshake completed). */
function sClient(port, args, input = 'Q\n') {
  return withTimeout(
    new Promise((resolve) => {
      const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (d) => (out += d));
      p.stderr.on('data', (d) => (out += d));
      p.stdin.on('error', () => {});
      p.stdin.end(input);
      p.on('exit', () => {
        const m = /Cipher is (\S+)/.exec(out);
        const ok = !!m && m[1] !== '(NONE)' && !/handshake failure|alert protocol version|no protocols available|wrong version number|no shared cipher/i.test(out);
        resolve({ ok, out, cipher: m?.[1], protocol: /Protocol\s*:\s*(\S+)/.exec(out)?.[1] ?? /New, (TLSv[\d.]+)/.exec(out)?.[1] });
      });
    }),
    20000,
    `openssl s_client ${args.join(' ')}`,
  );
}

test('TLS 1.1 is refused, 1.2 and 1.3 are served', async (t) => {
  const gw = await tlsGateway(t, EC, {}, { http2: false });
  try {
    const v11 = await sClient(gw.port, ['-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0']);
    assert.equal(v11.ok, false, `TLS 1.1 accepted:\n${v11.out}`);
    const v12 = await sClient(gw.port, ['-tls1_2']);
    assert.equal(v12.ok, true, v12.out);
    assert.match(v12.out, /TLSv1\.2/);
    assert.match(v12.cipher, /^ECDHE-ECDSA-(AES128-GCM|AES256-GCM|CHACHA20)/, v12.out);
    const v13 = await sClient(gw.port, ['-tls1_3']);
    assert.equal(v13.ok, true, v13.out);
    assert.match(v13.out, /TLSv1\.3/);
    // Node: a 1.3 handshake, the certificate checked, ALPN as before (http2: false: no h2)
    const s = await withTimeout(
      new Promise((resolve, reject) => {
        const c = tls.connect({ host: '127.0.0.1', port: gw.port, ca: EC.pem, ALPNProtocols: ['h2', 'http/1.1'], servername: 'localhost' }, () => resolve(c));
        c.once('error', reject);
      }),
      5000,
      'node tls',
    );
    assert.equal(s.getProtocol(), 'TLSv1.3');
    assert.notEqual(s.alpnProtocol, 'h2');
    s.destroy();
  } finally {
    await gw.stop();
  }
});

test('TLS 1.2 offers only ECDHE with AEAD: RSA key exchange and CBC suites are refused (RSA certificate)', async (t) => {
  const gw = await tlsGateway(t, RSA);
  try {
    for (const cipher of ['AES128-SHA', 'AES128-GCM-SHA256', 'AES256-SHA256', 'ECDHE-RSA-AES128-SHA', 'ECDHE-RSA-AES256-SHA384', 'DHE-RSA-AES128-GCM-SHA256']) {
      const r = await sClient(gw.port, ['-tls1_2', '-cipher', `${cipher}@SECLEVEL=0`]);
      assert.equal(r.ok, false, `${cipher} accepted on TLS 1.2:\n${r.out}`);
    }
    for (const cipher of ['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-RSA-CHACHA20-POLY1305']) {
      const r = await sClient(gw.port, ['-tls1_2', '-cipher', cipher]);
      assert.equal(r.ok, true, `${cipher} refused:\n${r.out}`);
      assert.equal(r.cipher, cipher);
    }
    // the server's order wins: a client preferring CHACHA20 still gets AES-128-GCM
    const pref = await sClient(gw.port, ['-tls1_2', '-cipher', 'ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256']);
    assert.equal(pref.cipher, 'ECDHE-RSA-AES128-GCM-SHA256', pref.out);
  } finally {
    await gw.stop();
  }
});

test('no session resumption and no renegotiation', async (t) => {
  const gw = await tlsGateway(t, EC);
  try {
    const sess = path.join(DIR, 'sess.pem');
    for (const v of ['-tls1_2', '-tls1_3']) {
      fs.rmSync(sess, { force: true });
      const first = await sClient(gw.port, [v, '-sess_out', sess], 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      assert.equal(first.ok, true, first.out);
      assert.doesNotMatch(first.out, /TLS session ticket:/, `a session ticket was issued (${v}):\n${first.out}`);
      if (fs.existsSync(sess) && fs.statSync(sess).size > 0) {
        const again = await sClient(gw.port, [v, '-sess_in', sess]);
        assert.doesNotMatch(again.out, /^Reused,/m, `session resumed (${v}):\n${again.out}`);
      }
    }
    // a renegotiation request ("R" on s_client's stdin) ends the connection, never a second handshake
    const r = await sClient(gw.port, ['-tls1_2', '-legacy_renegotiation'], 'R\n');
    assert.doesNotMatch(r.out, /RENEGOTIATING[\s\S]*verify return:1[\s\S]*verify return:1[\s\S]*verify return:1/);
    assert.match(r.out, /Secure Renegotiation IS (NOT )?supported/);
  } finally {
    await gw.stop();
  }
});

test('tls.min_version "1.3" refuses TLS 1.2; an unknown version is refused at load', async (t) => {
  const gw = await tlsGateway(t, EC, { min_version: '1.3' });
  try {
    assert.equal((await sClient(gw.port, ['-tls1_2'])).ok, false, 'TLS 1.2 accepted with min_version 1.3');
    assert.equal((await sClient(gw.port, ['-tls1_3'])).ok, true);
  } finally {
    await gw.stop();
  }
  const file = writeConfig(baseConfig({ listen: [{ address: '127.0.0.1', port: 0, tls: { cert: EC.cert, key: EC.key, min_version: '1.1' } }] }));
  const r = await runGatehouse(['check-config', file]);
  assert.equal(r.code, 1, r.stderr + r.stdout);
  assert.match(r.stderr + r.stdout, /"1\.1" is not a TLS version for tls\.min_version/);
});

// ---------------------------------------------------------------------------
// reload

/** A kept-alive TLS connection on which HTTP/1.1 requests are sent one after another. */
async function keepAlive(port, ca) {
  const s = await withTimeout(
    new Promise((resolve, reject) => {
      const c = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => resolve(c));
      c.once('error', reject);
    }),
    5000,
    'TLS connect',
  );
  let buf = '';
  s.on('data', (d) => (buf += d.toString('latin1')));
  return {
    sock: s,
    fingerprint: s.getPeerCertificate().fingerprint256,
    async get(p) {
      buf = '';
      s.write(`GET ${p} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
      await until(() => /\r\n\r\n[\s\S]*\}\n?$/.test(buf), { what: `answer to GET ${p} on the kept-alive connection` });
      return buf;
    },
  };
}

function fetchCert(port, ca) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const c = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
        const fp = c.getPeerCertificate().fingerprint256;
        c.destroy();
        resolve(fp);
      });
      c.once('error', reject);
    }),
    5000,
    'TLS connect',
  );
}

test('SIGHUP reloads the certificate: new connections get B, an open connection and an SSE stream go on; a broken file keeps B', async (t) => {
  const live = { cert: path.join(DIR, 'live.crt'), key: path.join(DIR, 'live.key') };
  fs.copyFileSync(EC.cert, live.cert);
  fs.copyFileSync(EC.key, live.key);
  const gw = await tlsGateway(t, live, {}, { limits: { sse_keepalive: '200ms' } });
  const both = Buffer.concat([EC.pem, B.pem]);
  try {
    assert.equal(await fetchCert(gw.port, both), EC.fingerprint256);
    const ka = await keepAlive(gw.port, both);
    assert.equal(ka.fingerprint, EC.fingerprint256);
    assert.match(await ka.get('/healthz'), /^HTTP\/1\.1 200/);

    // an MCP session and its GET stream (SSE), held open across the reload
    const sse = await keepAlive(gw.port, both);
    const initBody = JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: 't', version: '1' } } });
    let raw = '';
    sse.sock.on('data', (d) => (raw += d.toString('latin1')));
    sse.sock.write(`POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: ${initBody.length}\r\n\r\n${initBody}`);
    await until(() => /mcp-session-id: (\S+)/i.test(raw) && /"result"/.test(raw), { what: 'initialize answer' });
    const sid = /mcp-session-id: (\S+)/i.exec(raw)[1];
    const note = '{"jsonrpc":"2.0","method":"notifications/initialized"}';
    raw = '';
    sse.sock.write(`POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Session-Id: ${sid}\r\nMCP-Protocol-Version: ${PROTOCOL}\r\nContent-Length: ${note.length}\r\n\r\n${note}`);
    await until(() => /^HTTP\/1\.1 202/.test(raw), { what: 'initialized' });
    raw = '';
    sse.sock.write(`GET /mcp HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\nMcp-Session-Id: ${sid}\r\nMCP-Protocol-Version: ${PROTOCOL}\r\n\r\n`);
    await until(() => /^HTTP\/1\.1 200/.test(raw) && /text\/event-stream/i.test(raw), { what: 'SSE stream open' });

    // swap in B and reload
    fs.copyFileSync(B.cert, live.cert);
    fs.copyFileSync(B.key, live.key);
    const from = gw.events.length;
    gw.signal('SIGHUP');
    const ev = await gw.waitForEvent((e) => e.event === 'tls_reload', { from, what: 'tls_reload line' });
    assert.equal(ev.level, 'info', JSON.stringify(ev));
    assert.ok(JSON.stringify(ev).includes(B.fingerprint256), JSON.stringify(ev));
    await until(async () => (await fetchCert(gw.port, both)) === B.fingerprint256, { what: 'new connections served with B' });

    // the old connections go on, still with A
    assert.equal(ka.sock.getPeerCertificate().fingerprint256, EC.fingerprint256);
    assert.match(await ka.get('/healthz'), /^HTTP\/1\.1 200/);
    const before = raw.length;
    await until(() => raw.length > before && /:[^\n]*\n/.test(raw.slice(before)), { what: 'an SSE keep-alive after the reload' });
    assert.ok(!ka.sock.destroyed && !sse.sock.destroyed);

    // a key that does not match, then a certificate file that is not PEM: B stays, the log names the file
    for (const [file, content, cause] of [
      [live.key, EC.keyPem, /does not match/],
      [live.cert, 'not a certificate\n', /could not be loaded/],
    ]) {
      const keep = fs.readFileSync(file);
      fs.writeFileSync(file, content);
      const at = gw.events.length;
      gw.signal('SIGHUP');
      const bad = await gw.waitForEvent((e) => e.event === 'tls_reload', { from: at, what: 'tls_reload refusal' });
      assert.equal(bad.level, 'error', JSON.stringify(bad));
      const text = JSON.stringify(bad);
      assert.ok(text.includes(file), `the log does not name ${file}: ${text}`);
      assert.match(text, cause);
      assert.ok(!text.includes('PRIVATE KEY'), 'key material in the log');
      assert.equal(await fetchCert(gw.port, both), B.fingerprint256, 'a broken reload changed the certificate');
      fs.writeFileSync(file, keep);
    }
    assert.match(await ka.get('/healthz'), /^HTTP\/1\.1 200/);
    ka.sock.destroy();
    sse.sock.destroy();
  } finally {
    await gw.stop();
  }
});
