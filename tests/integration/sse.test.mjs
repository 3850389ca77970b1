// How a forwarded call's SSE answer starts: a fast call sends its priming event and its answer
// in one go; a slow one gets the priming event on its own within ~100 ms, so that a client whose
// connection drops early already holds an event id to resume from.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { baseConfig, miniServer, openSession, PROTOCOL, startGateway } from './lib.mjs';

let gw;
let s;
before(async () => {
  gw = await startGateway(baseConfig({ servers: [miniServer('a')] }));
  s = await openSession(gw.url);
});
after(async () => {
  if (gw) await gw.stop();
});

/** POSTs a tools/call and records when each chunk of the response arrived. */
function timedCall(name, args) {
  const body = JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name, arguments: args } });
  const u = new URL(gw.url);
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const chunks = [];
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-session-id': s.id,
          'mcp-protocol-version': PROTOCOL,
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        res.setEncoding('utf8');
        res.on('data', (c) => chunks.push({ at: Date.now() - t0, text: c }));
        res.on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'], chunks }));
      },
    );
    req.setTimeout(10000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

test('a slow call gets its priming event alone, long before its answer', async () => {
  const r = await timedCall('sleep', { ms: 800 });
  assert.equal(r.status, 200);
  assert.match(r.type, /text\/event-stream/);
  const first = r.chunks[0];
  assert.match(first.text, /^id: \d+-0\nretry: \d+\ndata: \n\n$/, JSON.stringify(first));
  assert.ok(first.at < 500, `priming event after ${first.at} ms`);
  const all = r.chunks.map((c) => c.text).join('');
  assert.match(all, /"id":7/);
  assert.match(all, /slept 800/);
  assert.ok(r.chunks.at(-1).at >= 750, 'the answer came after the sleep');
});

test('a fast call sends priming event and answer together', async () => {
  const r = await timedCall('tool', { text: 'quick' });
  const all = r.chunks.map((c) => c.text).join('');
  assert.match(all, /^id: (\d+)-0\nretry: \d+\ndata: \n\nid: \1-1\ndata: \{.*"a:quick".*\}\n\n$/s, all);
});
