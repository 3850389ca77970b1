// Helpers around the official SDK client (v1) for the interop tests.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { withTimeout, sleep } from './gateway.mjs';

export { Client, StreamableHTTPClientTransport };

/**
 * Connects an SDK client over Streamable HTTP.
 * options: {capabilities, name, transportOptions, setup(client) (before connect), timeoutMs}
 * Returns {client, transport, close()}; close() ends the session (DELETE) and the client.
 */
export async function connectClient(url, { capabilities = {}, name = 'gatehouse-interop', transportOptions = {}, setup, timeoutMs = 15000 } = {}) {
  const client = new Client({ name, version: '1.0.0' }, { capabilities });
  if (setup) setup(client);
  const transport = new StreamableHTTPClientTransport(new URL(url), transportOptions);
  await withTimeout(client.connect(transport), timeoutMs, `MCP initialize against ${url}`);
  let closed = false;
  return {
    client,
    transport,
    async close({ terminate = true } = {}) {
      if (closed) return;
      closed = true;
      if (terminate) await withTimeout(transport.terminateSession(), 5000, 'DELETE session').catch(() => {});
      await withTimeout(client.close(), 5000, 'client close').catch(() => {});
    },
  };
}

/** Follows nextCursor for a list method ('tools' | 'resources' | 'resourceTemplates' | 'prompts'). */
export async function listAll(client, kind) {
  const fn = {
    tools: (p) => client.listTools(p),
    resources: (p) => client.listResources(p),
    resourceTemplates: (p) => client.listResourceTemplates(p),
    prompts: (p) => client.listPrompts(p),
  }[kind];
  const out = [];
  let cursor;
  for (let page = 0; page < 50; page++) {
    const r = await fn(cursor ? { cursor } : {});
    out.push(...r[kind]);
    cursor = r.nextCursor;
    if (!cursor) return out;
  }
  throw new Error(`${kind}: more than 50 pages`);
}

/** Text of all text content items of a tool result, joined. */
export function resultText(result) {
  return (result.content ?? [])
    .filter((c) => c.type === 'text')
    .map((c) => c.text)
    .join('\n');
}

/** Polls fn until it returns a truthy value (bounded). */
export async function eventually(fn, { timeoutMs = 5000, intervalMs = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/**
 * A fetch for StreamableHTTPClientTransport that records every request and can cut the
 * SSE response stream of an in-flight POST (as a dropped connection would), so the
 * tests can exercise Last-Event-ID resumption.
 */
export function cuttableFetch() {
  const requests = [];
  const open = new Set();
  const f = async (input, init = {}) => {
    const headers = new Headers(init.headers ?? {});
    const method = (init.method ?? 'GET').toUpperCase();
    requests.push({ method, url: String(input), lastEventId: headers.get('last-event-id'), body: init.body });
    const res = await fetch(input, init);
    const ct = res.headers.get('content-type') ?? '';
    if (method !== 'POST' || !ct.includes('text/event-stream') || !res.body) return res;
    const reader = res.body.getReader();
    let controllerRef;
    const entry = {
      cut() {
        reader.cancel().catch(() => {});
        try {
          controllerRef.error(new TypeError('terminated (cut by test)'));
        } catch {
          /* already closed */
        }
        open.delete(entry);
      },
    };
    const body = new ReadableStream({
      start(controller) {
        controllerRef = controller;
      },
      async pull(controller) {
        try {
          const { value, done } = await reader.read();
          if (done) {
            open.delete(entry);
            controller.close();
          } else controller.enqueue(value);
        } catch (err) {
          open.delete(entry);
          try {
            controller.error(err);
          } catch {
            /* already errored */
          }
        }
      },
      cancel() {
        open.delete(entry);
        return reader.cancel();
      },
    });
    open.add(entry);
    return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
  return {
    fetch: f,
    requests,
    /** Cuts every POST SSE stream still open; returns how many were cut. */
    cutOpenPostStreams() {
      const n = open.size;
      for (const e of [...open]) e.cut();
      return n;
    },
  };
}
