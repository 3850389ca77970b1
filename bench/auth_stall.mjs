#!/usr/bin/env node
// Does a burst of token requests stall MCP traffic on the same worker? A gateway with one
// worker and auth on; one loop sends authenticated MCP `initialize` requests back to back (the
// gateway answers them itself: the cost is the bearer check and the codec), first alone, then
// while bursts of client_credentials token requests with a client secret (an argon2id check each)
// arrive. Prints the MCP latency percentiles of both phases.
//
//   node bench/auth_stall.mjs [BUILD_DIR] [--seconds N] [--burst N]
//
// The store, config and gateway live in a temporary directory; everything is stopped at the end.
import { parseArgs } from 'node:util';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: opt, positionals } = parseArgs({ allowPositionals: true, options: { seconds: { type: 'string', default: '5' }, burst: { type: 'string', default: '8' } } });
process.env.GATEHOUSE_BIN ??= path.resolve(positionals[0] ?? path.join(here, '..', 'build'), 'gatehouse');
const { startAuthGateway, createUserClient, mcpInit, token } = await import('../tests/integration/oauth_lib.mjs');

const gw = await startAuthGateway(null, { workers: 1, users: ['alice'] });
const { id, secret } = createUserClient(gw.configFile, 'alice');
const grant = () => token(gw, { grant_type: 'client_credentials' }, { basic: [id, secret] });
const at = (await grant()).json.access_token;

async function mcpLoop(ms) {
  const lat = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const t0 = process.hrtime.bigint();
    const r = await mcpInit(gw.url, at);
    if (r.status !== 200) throw new Error(`MCP answered ${r.status}`);
    lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return lat.sort((a, b) => a - b);
}
const pct = (a, p) => a[Math.min(a.length - 1, Math.floor((a.length * p) / 100))].toFixed(2);
const row = (what, a, extra = '') => console.log(`${what.padEnd(28)} n=${String(a.length).padEnd(6)} p50 ${pct(a, 50)} ms  p99 ${pct(a, 99)} ms  max ${a[a.length - 1].toFixed(2)} ms${extra}`);

const ms = Number(opt.seconds) * 1000;
row('MCP alone', await mcpLoop(ms));
let tokens = 0;
let stop = false;
const bursts = (async () => {
  while (!stop) {
    const rs = await Promise.all(Array.from({ length: Number(opt.burst) }, grant));
    for (const r of rs) if (r.status !== 200) throw new Error(`token ${r.status}`);
    tokens += rs.length;
  }
})();
const busy = await mcpLoop(ms);
stop = true;
await bursts;
row(`MCP + token bursts of ${opt.burst}`, busy, `  (${(tokens / (ms / 1000)).toFixed(0)} tokens/s)`);
await gw.kill();
