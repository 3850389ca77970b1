// A throwaway redis-server for the tests: its own temporary directory, a free loopback port, no
// persistence, stopped when the test ends. The system's Redis service is never used.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { closedLoopbackPort, tempDir, withTimeout } from './lib.mjs';

const SERVER = process.env.GH_REDIS_SERVER ?? '/usr/bin/redis-server';

/** Start redis-server (password: optional requirepass). Resolves {port, url(db), stop(), start(), cli(args)}. */
export async function startRedis(t, { password, port } = {}) {
  if (!fs.existsSync(SERVER)) throw new Error(`${SERVER} is missing: install redis-server (scripts/deps.sh test)`);
  const dir = tempDir();
  port = port ?? (await closedLoopbackPort());
  let child = null;
  const r = {
    port,
    dir,
    url: (db = 0) => `redis://${password ? `:${encodeURIComponent(password)}@` : ''}127.0.0.1:${port}/${db}`,
    async start() {
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--protected-mode', 'yes'];
      if (password) args.push('--requirepass', password);
      child = spawn(SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      const ready = new Promise((resolve, reject) => {
        child.stdout.on('data', (c) => {
          out += c;
          if (out.includes('Ready to accept connections')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`redis-server exited (${code}):\n${out}`)));
      });
      await withTimeout(ready, 10000, `redis-server on port ${port}`);
    },
    /** SIGKILL: clients see their connections drop. */
    async stop() {
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await gone;
    },
    cli(args) {
      const a = ['-h', '127.0.0.1', '-p', String(port), '--no-auth-warning'];
      if (password) a.push('-a', password);
      const x = spawnSync(path.join(path.dirname(SERVER), 'redis-cli'), [...a, ...args], { encoding: 'utf8' });
      return x.stdout.trim();
    },
  };
  await r.start();
  t.after(() => r.stop());
  return r;
}
