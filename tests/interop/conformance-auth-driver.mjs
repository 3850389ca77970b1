// The conformance suite's "client" for its auth scenarios, when the client is Gatehouse: the suite
// runs `node conformance-auth-driver.mjs <server URL>` with its MCP server and authorization
// server up. This starts a real gateway with that URL as an upstream with auth.oauth, adds a
// user, asks the CLI for the user's connect link (`gatehouse user connect`), and follows it like
// the user's browser would (a cookie jar, redirects by hand: the suite's authorization server
// approves at once). The gateway does the rest: the unauthenticated probe and its 401, the
// protected-resource and authorization-server metadata, registration, PKCE, the code exchange,
// the vault, and one authenticated request to the server. Exits 0 when the final page says
// "Connected", 1 otherwise (the suite's own checks are the verdict either way).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Browser } from './lib/browser.mjs';
import { GATEHOUSE_BIN as BIN } from './lib/gateway.mjs';

const serverUrl = process.argv[process.argv.length - 1];

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function cli(file, args) {
  const r = spawnSync(BIN, [...args, '-c', file], { encoding: 'utf8', timeout: 20000 });
  if (r.status !== 0) throw new Error(`gatehouse ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout.trim();
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-confauth-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const oauth = { allow_private: true };
  // A scenario's context (MCP_CONFORMANCE_CONTEXT) may hand the client pre-registered
  // credentials: configured as an operator would, the secret in a file only its owner reads.
  const context = JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT || '{}');
  if (context.client_id) oauth.client_id = context.client_id;
  if (context.client_secret) {
    const f = path.join(dir, 'client.secret');
    fs.writeFileSync(f, context.client_secret + '\n', { mode: 0o600 });
    oauth.client_secret_file = f;
  }
  const config = {
    listen: [{ address: '127.0.0.1', port }],
    limits: { shutdown_grace: '1s' },
    store: { sqlite: path.join(dir, 'gh.db') },
    auth: { issuer: base },
    servers: [{ name: 'up', url: serverUrl, auth: { oauth } }],
  };
  const file = path.join(dir, 'gatehouse.yaml');
  fs.writeFileSync(file, JSON.stringify(config, null, 2));
  cli(file, ['user', 'add', 'alice', '--no-password']);
  const gw = spawn(BIN, ['run', '-c', file], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const log = fs.createWriteStream(path.join(dir, 'gateway.log'));
  gw.stdout.pipe(log);
  gw.stderr.pipe(log);
  let out = '';
  gw.stdout.on('data', (d) => (out += d));
  gw.stderr.on('data', (d) => (out += d));
  try {
    for (let i = 0; i < 200 && !out.includes('"listening"'); i++) await new Promise((r) => setTimeout(r, 50));
    if (!out.includes('"listening"')) throw new Error(`the gateway did not start:\n${out}`);
    const link = cli(file, ['user', 'connect', 'alice', 'up']);
    const browser = new Browser();
    const { page } = await browser.follow(link);
    const ok = page.status === 200 && page.text.includes('Connected');
    process.stdout.write(`gatehouse: ${page.status} ${page.text.replace(/<style[\s\S]*?<\/style>/g, '').replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').slice(0, 400)}\n`);
    process.exitCode = ok ? 0 : 1;
  } finally {
    // a clean stop is part of the verdict (under ASan: no leak, no error)
    const exited = new Promise((r) => gw.once('exit', (code, signal) => r({ code, signal })));
    try {
      process.kill(-gw.pid, 'SIGTERM');
    } catch {
      /* gone */
    }
    const r = await Promise.race([exited, new Promise((res) => setTimeout(() => res({ code: null, signal: 'timeout' }), 10000))]);
    if (r.code !== 0) {
      process.stdout.write(`gatehouse: the gateway stopped with ${JSON.stringify(r)}\n${out.slice(-3000)}\n`);
      process.exitCode = 1;
      try {
        process.kill(-gw.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    if (process.env.GATEHOUSE_KEEP_DIR) process.stdout.write(`gatehouse dir: ${dir}\n`);
    else fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`${e.stack}\n`);
  process.exitCode = 1;
});
