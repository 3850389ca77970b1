#!/usr/bin/env node
// The command the official conformance suite runs for its CLIENT scenarios, with Gatehouse as the
// client under test: `conformance client --command "node conformance-client-driver.mjs" --scenario
// X` starts the suite's test server and runs this file with that server's URL as the last
// argument. This file starts gatehouse with that URL as its only (HTTP) upstream — the gateway
// probes it like any other upstream, in both eras — and drives a real MCP client through the
// gateway to do what the scenario expects of a client (list the tools, call one, answer the
// elicitation...). The suite then judges the requests the GATEWAY sent upstream.
//
// Nothing here knows what the suite checks; each driver does only the user-level action the
// scenario's description asks for. DRIVERS is the per-scenario table: another scenario (the
// auth/* ones) plugs in by adding an entry, which may also shape the upstream's configuration
// (upstream(url, ctx)) and the gateway's (gateway(ctx)).
//
// DIRECT=1 runs the SDK client against the suite's server without the gateway (proves a driver).
// Environment (set by the suite): MCP_CONFORMANCE_SCENARIO, MCP_CONFORMANCE_PROTOCOL_VERSION,
// MCP_CONFORMANCE_CONTEXT (JSON, optional). The gateway's log goes to stderr, which the suite keeps
// in <out>/<scenario>/stderr.txt. Exit status: 0 when the driver's action completed; the outcome
// also goes to the file GATEHOUSE_DRIVER_STATUS names ({ok, error}).

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as TransportV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2 } from '@modelcontextprotocol/client';
import { Browser } from './lib/browser.mjs';
import { DIRECT, GATEHOUSE_BIN, freePort, startGateway, httpUpstream, withTimeout } from './lib/gateway.mjs';

export const LEGACY = '2025-11-25';
export const MODERN = '2026-07-28';

/** Fills an elicitation's form from the defaults its schema declares (what a user who accepts
    the proposed values sends). */
function acceptDefaults(params) {
  const content = {};
  for (const [k, s] of Object.entries(params?.requestedSchema?.properties ?? {})) {
    if (s && 'default' in s) content[k] = s.default;
    else if (s?.type === 'boolean') content[k] = true;
  }
  return { action: 'accept', content };
}

/** Lists the tools, then calls each one the list offers with arguments that fit its schema. */
async function listThenCall(client, { only } = {}) {
  const { tools } = await client.listTools();
  for (const t of tools) {
    if (only && !only.includes(t.name)) continue;
    await client.callTool({ name: t.name, arguments: sampleArguments(t.inputSchema) });
  }
  return tools;
}

/** Arguments that satisfy a simple object schema (numbers, strings, booleans). */
function sampleArguments(schema) {
  const args = {};
  for (const [k, s] of Object.entries(schema?.properties ?? {})) {
    if (!(schema.required ?? []).includes(k) && !s?.default) continue;
    if ('default' in (s ?? {})) args[k] = s.default;
    else if (s?.type === 'number' || s?.type === 'integer') args[k] = 2;
    else if (s?.type === 'boolean') args[k] = true;
    else if (s?.enum) args[k] = s.enum[0];
    else args[k] = 'x';
  }
  return args;
}

/* ---- the auth/* scenarios: the suite's server and authorization server, Gatehouse as its
   OAuth client (auth.oauth), a user who connects through the gateway's own link ---- */

function gatehouseCli(configPath, args) {
  const r = spawnSync(GATEHOUSE_BIN, [...args, '-c', configPath], { encoding: 'utf8', timeout: 20000 });
  if (r.status !== 0) throw new Error(`gatehouse ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout.trim();
}

/** Follows a connect link like the user's browser (the suite's authorization server approves at
    once); the gateway's last page must say the account is connected, or with `refused` that the
    gateway refused the authorization (a scenario whose server or authorization server misbehaves
    on purpose). */
async function connectInBrowser(link, { refused = false } = {}) {
  const { page } = await new Browser().follow(link);
  const text = page.text.replace(/<style[\s\S]*?<\/style>/g, '').replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ');
  const connected = page.status === 200 && text.includes('Connected');
  if (refused ? connected || !text.includes('Authorization refused') : !connected) {
    throw new Error(`the connect link ended on ${page.status}${refused ? ' (a refusal was expected)' : ''}: ${text.slice(0, 300)}`);
  }
  if (refused) process.stderr.write(`conformance-client-driver: refused as expected: ${text.slice(0, 300)}\n`);
}

/** The connect link of a -32042 (URL elicitation required) error, or undefined. */
function urlElicitation(err) {
  if (err?.code !== -32042) return undefined;
  return err.data?.elicitations?.find((e) => e.mode === 'url')?.url;
}

/**
 * An auth scenario: the gateway (auth on, its own issuer on a port chosen first) fronts the suite's
 * server with auth.oauth (the suite's pre-registered credentials from the context, the secret in a
 * file only its owner reads). Before the client connects, alice exists, has a client of her own
 * and a gateway token from it (client_credentials), and connects the upstream account through
 * `gatehouse user connect`'s link. The client then lists the tools and calls each one; a call that
 * answers -32042 (the gateway asks for a new or wider authorization: a 401 or a step-up 403 from
 * the server) is followed in the browser and made again, at most `retries` times.
 */
function authDriver({ retries = 2, refused = false } = {}) {
  return {
    before: async (ctx) => {
      ctx.port = await freePort('127.0.0.1');
      ctx.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-confauth-'));
    },
    upstream: (url, ctx) => {
      const oauth = { allow_private: true };
      if (ctx.client_id) oauth.client_id = ctx.client_id;
      if (ctx.client_secret) {
        const f = path.join(ctx.dir, 'client.secret');
        fs.writeFileSync(f, `${ctx.client_secret}\n`, { mode: 0o600 });
        oauth.client_secret_file = f;
      }
      return httpUpstream('upstream', url, { auth: { oauth } });
    },
    // The server is not ready for the gateway before a user connects (its lists want a token).
    waitReady: false,
    cleanStop: true,
    gateway: (ctx) => ({
      listen: [{ address: '127.0.0.1', port: ctx.port }],
      limits: { shutdown_grace: '1s' },
      auth: { issuer: `http://127.0.0.1:${ctx.port}` },
      store: { sqlite: path.join(ctx.dir, 'gh.db') },
    }),
    prepare: async (gw, ctx) => {
      gatehouseCli(gw.configPath, ['user', 'add', 'alice', '--no-password']);
      const out = gatehouseCli(gw.configPath, ['client', 'create', '--user', 'alice']);
      const id = out.match(/^client_id: (\S+)$/m)[1];
      const secret = out.match(/^client_secret: (\S+)$/m)[1];
      const base = `http://127.0.0.1:${ctx.port}`;
      const r = await fetch(`${base}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}` },
        body: new URLSearchParams({ grant_type: 'client_credentials', resource: `${base}/mcp` }),
      });
      const tok = await r.json();
      if (r.status !== 200) throw new Error(`alice's gateway token: ${r.status} ${JSON.stringify(tok)}`);
      ctx.headers = { authorization: `Bearer ${tok.access_token}` };
      await connectInBrowser(gatehouseCli(gw.configPath, ['user', 'connect', 'alice', 'upstream']), { refused });
    },
    run: async (client) => {
      if (refused) return void (await client.listTools()); // nothing to call with: no token
      const { tools } = await client.listTools();
      for (const t of tools) {
        for (let attempt = 0; ; attempt++) {
          try {
            await client.callTool({ name: t.name, arguments: sampleArguments(t.inputSchema) });
            break;
          } catch (err) {
            const link = urlElicitation(err);
            if (!link || attempt >= retries) throw err;
            await connectInBrowser(link);
          }
        }
      }
    },
    after: (ctx) => fs.rmSync(ctx.dir, { recursive: true, force: true }),
  };
}

/* The scenarios whose server or authorization server misbehaves on purpose: the gateway must
   refuse to connect (a resource that is not the server's, an issuer that does not match). */
const AUTH_REFUSED = new Set([
  'auth/resource-mismatch',
  'auth/iss-supported-missing',
  'auth/iss-wrong-issuer',
  'auth/iss-unexpected',
  'auth/iss-normalized',
  'auth/metadata-issuer-mismatch',
]);

const AUTH_SCENARIOS = [
  'auth/metadata-default',
  'auth/metadata-var1',
  'auth/metadata-var2',
  'auth/metadata-var3',
  'auth/basic-cimd',
  'auth/scope-from-www-authenticate',
  'auth/scope-from-scopes-supported',
  'auth/scope-omitted-when-undefined',
  'auth/scope-step-up',
  'auth/scope-retry-limit',
  'auth/pre-registration',
  'auth/token-endpoint-auth-basic',
  'auth/token-endpoint-auth-post',
  'auth/token-endpoint-auth-none',
  'auth/resource-mismatch',
  'auth/offline-access-scope',
  'auth/offline-access-not-supported',
  'auth/authorization-server-migration',
  'auth/iss-supported',
  'auth/iss-not-advertised',
  'auth/iss-supported-missing',
  'auth/iss-wrong-issuer',
  'auth/iss-unexpected',
  'auth/iss-normalized',
  'auth/metadata-issuer-mismatch',
];

/**
 * Per-scenario drivers. Keys, all optional but run:
 *   era           'legacy' | 'modern'; default: by the revision under test (2026-07-28 = modern)
 *   capabilities  the client's capabilities
 *   setup(client, era)   request handlers, before connect
 *   upstream(url, ctx)   the gateway's server entry for the suite's URL (default: a plain HTTP
 *                        upstream named "upstream"); an auth scenario adds its OAuth client here
 *   gateway(ctx)         extra top-level gateway configuration keys
 *   before(ctx)          first of all (an auth scenario picks the gateway's port there)
 *   waitReady            false: do not wait for /readyz before the client connects
 *   cleanStop            true: the gateway must exit 0 when stopped (under ASan: no leak)
 *   prepare(gw, ctx)     after the gateway listens, before the client connects (e.g. complete an
 *                        authorization the upstream demands, through the gateway's own pages);
 *                        ctx.headers, when set, go on every request of the client
 *   after(ctx)           last, whatever happened
 *   run(client, ctx)     the scenario's user-level action through the gateway
 * ctx is the scenario's MCP_CONFORMANCE_CONTEXT (for auth scenarios: the client credentials the
 * suite hands out).
 */
export const DRIVERS = {
  // The client connects; the gateway's own handshake with the upstream is what is judged.
  initialize: { run: async (client) => client.listTools() },
  tools_call: { run: async (client) => listThenCall(client, { only: ['add_numbers'] }) },
  'elicitation-sep1034-client-defaults': {
    capabilities: { elicitation: { form: {} } },
    setup: (client, era) => {
      if (era === 'legacy') client.setRequestHandler(ElicitRequestSchema, async (req) => acceptDefaults(req.params));
      else client.setRequestHandler('elicitation/create', async (req) => acceptDefaults(req.params));
    },
    run: async (client) => listThenCall(client),
  },
  // The tool's stream is closed by the server before the result; the result arrives on resumption.
  'sse-retry': { run: async (client) => listThenCall(client) },
  'request-metadata': { run: async (client) => listThenCall(client) },
  'sep-2322-client-request-state': {
    capabilities: { elicitation: { form: {} } },
    setup: (client) => client.setRequestHandler('elicitation/create', async (req) => acceptDefaults(req.params)),
    run: async (client) => listThenCall(client),
  },
  // Every kind of request that carries a name: the tools, the resources and the prompts.
  'http-standard-headers': {
    run: async (client) => {
      await listThenCall(client);
      const { resources } = await client.listResources();
      for (const r of resources) await client.readResource({ uri: r.uri });
      const { prompts } = await client.listPrompts();
      for (const p of prompts) await client.getPrompt({ name: p.name, arguments: sampleArguments({ properties: Object.fromEntries((p.arguments ?? []).map((a) => [a.name, {}])), required: (p.arguments ?? []).filter((a) => a.required).map((a) => a.name) }) });
    },
  },
  // The scenario hands the calls to make (tool and arguments) in its context.
  'http-custom-headers': {
    run: async (client, ctx) => {
      await client.listTools();
      for (const c of ctx.toolCalls ?? []) await client.callTool({ name: c.name, arguments: c.arguments });
    },
  },
  // Calls every tool the gateway offers: the ones it excluded cannot be called.
  'http-invalid-tool-headers': { run: async (client) => listThenCall(client) },
  'json-schema-ref-no-deref': { run: async (client) => client.listTools() },
  // Lists the tools, then hands the rich tool's inputSchema, as the client received it, to the
  // echo tool (the scenario's description asks for exactly this round trip).
  'json-schema-2020-12-preservation': {
    run: async (client) => {
      const { tools } = await client.listTools();
      const focal = tools.find((t) => t.name === 'json_schema_2020_12_tool');
      if (!focal) throw new Error(`json_schema_2020_12_tool not listed (got ${tools.map((t) => t.name).join(', ')})`);
      await client.callTool({ name: 'json_schema_echo', arguments: { schema: focal.inputSchema } });
    },
  },
  ...Object.fromEntries(AUTH_SCENARIOS.map((s) => [s, authDriver({ refused: AUTH_REFUSED.has(s) })])),
};

/** Waits (bounded) until the gateway's /readyz says its upstream is ready, so that the action
    does not race the gateway's own handshake; a server that never gets ready is the scenario's
    to judge, so this only waits. */
async function untilReady(mcpUrl, timeoutMs = 10000) {
  const url = new URL('/readyz', mcpUrl);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await fetch(url).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  process.stderr.write(`conformance-client-driver: ${url} not ready after ${timeoutMs} ms; going on\n`);
}

/** Client scenarios that cannot apply to a gateway, with the reason (docs/conformance.md says
    more, with the suite's text). The runner names them instead of running them. */
const HOST_DUTY = 'the skills extension (SEP-2640) puts these duties on the host that loads a skill; a gateway relays resources/read bytes to that host and loads no skill (and Gatehouse does not carry the extension)';
export const NOT_APPLICABLE = {
  'sep-2640-client-no-prefetch': HOST_DUTY,
  'sep-2640-client-verify-digest': HOST_DUTY,
  'sep-2640-client-verify-size': HOST_DUTY,
  'sep-2640-client-verify-frontmatter': HOST_DUTY,
};

async function connect(url, era, d, headers) {
  const info = { name: 'gatehouse-conformance-driver', version: '1.0.0' };
  const capabilities = d.capabilities ?? {};
  const opts = headers ? { requestInit: { headers } } : undefined;
  if (era === 'legacy') {
    const client = new ClientV1(info, { capabilities });
    d.setup?.(client, era);
    await withTimeout(client.connect(new TransportV1(new URL(url), opts)), 20000, `connect (legacy) to ${url}`);
    return client;
  }
  const client = new ClientV2(info, { capabilities, versionNegotiation: { mode: { pin: MODERN } } });
  d.setup?.(client, era);
  await withTimeout(client.connect(new TransportV2(new URL(url), opts)), 20000, `connect (modern) to ${url}`);
  return client;
}

export async function drive(scenario, spec, upstreamUrl, ctx = {}) {
  const d = DRIVERS[scenario];
  if (!d) throw new Error(`no driver for scenario ${scenario}: add one to DRIVERS in conformance-client-driver.mjs`);
  const era = d.era ?? (spec === MODERN ? 'modern' : 'legacy');
  if (DIRECT) {
    // DIRECT=1: the SDK client alone against the suite's server, to prove the drivers.
    const client = await connect(upstreamUrl, era, d);
    try {
      await withTimeout(d.run(client, ctx), 25000, `${scenario} driver (direct)`);
    } finally {
      await client.close().catch(() => {});
    }
    return;
  }
  await d.before?.(ctx);
  let gw;
  let client;
  let stopped;
  try {
    const server = d.upstream ? d.upstream(upstreamUrl, ctx) : httpUpstream('upstream', upstreamUrl);
    gw = await startGateway({ servers: [server], prefix: { mode: 'never' }, workers: 1, config: d.gateway?.(ctx) ?? {} });
    await d.prepare?.(gw, ctx);
    if (d.waitReady !== false) await untilReady(gw.url);
    client = await connect(gw.url, era, d, ctx.headers);
    await withTimeout(d.run(client, ctx), 25000, `${scenario} driver`);
  } finally {
    await client?.close().catch(() => {});
    if (gw) {
      stopped = await gw.stop();
      process.stderr.write(`--- gatehouse log (${scenario}, ${spec}) ---\n${gw.logs()}\n`);
      if (stopped.leaked?.length) process.stderr.write(`gatehouse left processes behind: ${stopped.leaked.join('; ')}\n`);
    }
    d.after?.(ctx);
  }
  // A clean stop is part of the verdict of the auth scenarios (under ASan: no leak, no error at
  // exit). Not yet of the others: under ASan, the sse-retry scenario's gateway exits with
  // LeakSanitizer's report of a call, its pending request and stream left after a resumed SSE
  // stream (docs/conformance.md), to be fixed before this applies to every scenario.
  if (d.cleanStop && stopped.code !== 0) throw new Error(`the gateway stopped with ${JSON.stringify({ code: stopped.code, signal: stopped.signal })}`);
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('conformance-client-driver.mjs')) {
  const url = process.argv.at(-1);
  const scenario = process.env.MCP_CONFORMANCE_SCENARIO;
  const spec = process.env.MCP_CONFORMANCE_PROTOCOL_VERSION ?? LEGACY;
  const ctx = process.env.MCP_CONFORMANCE_CONTEXT ? JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT) : {};
  // The runner (conformance-client.mjs) learns the driver's outcome from this file: the suite
  // keeps a client's exit status to itself.
  const status = (v) => process.env.GATEHOUSE_DRIVER_STATUS && fs.writeFileSync(process.env.GATEHOUSE_DRIVER_STATUS, JSON.stringify(v));
  drive(scenario, spec, url, ctx).then(
    () => {
      status({ ok: true });
      process.exit(0);
    },
    (err) => {
      status({ ok: false, error: String(err?.message ?? err).split('\n')[0] });
      process.stderr.write(`conformance-client-driver: ${scenario} (${spec}): ${err?.stack ?? err}\n`);
      process.exit(1);
    },
  );
}
