// An independent oracle for "every operation still callable": from an OpenAPI 3.x document
// (JSON), written from the specification and not from the C converter, it computes for one
// operation the tool arguments (names by the documented collision rule, values generated from
// the document's schemas) and the exact HTTP request the document demands for them: path
// templating with RFC 3986 percent-encoding and the simple/label/matrix styles, query styles
// (form with and without explode, spaceDelimited, pipeDelimited, deepObject with nested keys),
// header and cookie parameters, JSON bodies and form-urlencoded bodies with Stripe's nested
// keys (metadata[k]=v, items[0][price]=v).

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];

/** Resolve local $refs (one level at a time; `seen` breaks cycles). */
export function deref(doc, v, seen = new Set()) {
  while (v && typeof v === 'object' && typeof v.$ref === 'string') {
    if (seen.has(v.$ref)) return { type: 'object' };
    seen.add(v.$ref);
    let t = doc;
    for (const part of v.$ref.replace(/^#\//, '').split('/'))
      t = t?.[decodeURIComponent(part).replace(/~1/g, '/').replace(/~0/g, '~')];
    v = t;
  }
  return v;
}

/** Every operation: {method, path, op, params (merged, resolved), tag}. */
export function operations(doc) {
  const out = [];
  for (const [p, item] of Object.entries(doc.paths ?? {})) {
    for (const m of METHODS) {
      const op = item[m];
      if (!op) continue;
      const params = [];
      for (const raw of [...(item.parameters ?? []), ...(op.parameters ?? [])]) {
        const prm = deref(doc, raw);
        const i = params.findIndex((q) => q.name === prm.name && q.in === prm.in);
        if (i >= 0) params[i] = prm;
        else params.push(prm);
      }
      out.push({ method: m.toUpperCase(), path: p, op, params, tag: op.tags?.[0] ?? p.split('/')[1] ?? '' });
    }
  }
  return out;
}

// ---- values ----

/** The schema with allOf merged and the first oneOf/anyOf branch taken. */
function shape(doc, s, seen) {
  s = deref(doc, s, seen) ?? {};
  if (s.allOf) {
    const merged = { type: 'object', properties: {}, required: [] };
    for (const m of s.allOf) {
      const x = shape(doc, m, new Set(seen));
      Object.assign(merged.properties, x.properties ?? {});
      merged.required.push(...(x.required ?? []));
      if (x.type && x.type !== 'object' && !x.properties) return x;
    }
    Object.assign(merged.properties, s.properties ?? {});
    return merged;
  }
  const branch = s.oneOf ?? s.anyOf;
  if (branch?.length && !s.properties) return shape(doc, branch[0], seen);
  return s;
}

function typeOf(s) {
  const t = Array.isArray(s.type) ? s.type.find((x) => x !== 'null') : s.type;
  if (t) return t;
  if (s.properties || s.additionalProperties) return 'object';
  if (s.items) return 'array';
  return 'string';
}

/** A deterministic value for schema s; `n` varies it (second array item), `ascii` for headers. */
export function value(doc, s, { name = 'v', n = 0, depth = 0, ascii = false, seen = new Set() } = {}) {
  s = shape(doc, s, new Set(seen));
  if (Array.isArray(s.enum) && s.enum.length) {
    const e = s.enum.filter((x) => x !== null && x !== '');
    if (e.length) return e[n % e.length];
  }
  switch (typeOf(s)) {
    case 'integer':
      return 7 + n;
    case 'number':
      return 2.5 + n;
    case 'boolean':
      return true;
    case 'array':
      if (depth > 3) return [];
      return [0, 1].map((i) => value(doc, s.items ?? {}, { name, n: i, depth: depth + 1, ascii, seen }));
    case 'object': {
      if (depth > 3) return {};
      const o = {};
      const props = Object.entries(s.properties ?? {}).filter(([, v]) => !deref(doc, v)?.readOnly);
      const req = new Set(s.required ?? []);
      let optional = 0;
      for (const [k, v] of props) {
        if (!req.has(k) && optional++ >= 2) continue;
        o[k] = value(doc, v, { name: k, depth: depth + 1, ascii, seen });
      }
      if (!props.length) {
        const ap = typeof s.additionalProperties === 'object' ? s.additionalProperties : { type: 'string' };
        o.k1 = value(doc, ap, { name: 'k1', depth: depth + 1, ascii, seen });
      }
      return o;
    }
    default:
      if (s.format === 'date-time') return `2024-05-0${6 + n}T07:08:09Z`;
      if (s.format === 'date') return `2024-05-0${6 + n}`;
      if (ascii) return `h-${name}${n ? n : ''}`;
      return `v ${name}${n ? n : ''}/é&=?#[`;
  }
}

// ---- arguments: the documented naming rule ----

const sanitize = (w) => (w.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64) || 'arg');

function bodyMedia(op) {
  const types = Object.keys(op.requestBody?.content ?? {});
  return (
    types.find((t) => t === 'application/json') ??
    types.find((t) => t.includes('json')) ??
    types.find((t) => t.startsWith('application/x-www-form-urlencoded')) ??
    types.find((t) => t.startsWith('multipart/form-data')) ??
    types[0]
  );
}

/** The tool's arguments as the document defines them: [{name, in, wire, schema, required, param}]. */
export function argumentsOf(doc, o) {
  const args = [];
  const add = (wire, where, schema, required, param, whole = false) => {
    const taken = (c) => args.some((a) => a.name === c);
    let name = sanitize(wire);
    if (taken(name)) name = `${where}_${sanitize(wire)}`;
    for (let k = 2; taken(name); k++) name = `${where}_${sanitize(wire)}_${k}`;
    args.push({ name, in: where, wire, schema, required, param, whole });
  };
  for (const where of ['path', 'query', 'header', 'cookie'])
    for (const p of o.params) if (p.in === where) add(p.name, where, p.schema ?? {}, !!p.required, p);
  const body = deref(doc, o.op.requestBody);
  const media = bodyMedia({ requestBody: body });
  if (media) {
    const s = shape(doc, body.content[media].schema ?? {}, new Set());
    const flat =
      s.properties &&
      !s.oneOf &&
      !s.anyOf &&
      (media.includes('json') || media.startsWith('application/x-www-form-urlencoded') || media.startsWith('multipart/form-data') || media === '*/*');
    if (!flat) add('body', 'body', s, !!body.required, null, true);
    else
      for (const [k, v] of Object.entries(s.properties)) {
        if (deref(doc, v)?.readOnly) continue;
        add(k, 'body', v, !!body.required && (s.required ?? []).includes(k), null);
      }
  }
  return { args, media, body };
}

// ---- the request ----

const unreserved = (b) => (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e;
/** RFC 3986 percent-encoding of everything but the unreserved characters. */
export function pct(s) {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) out += unreserved(b) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}
const text = (v) => (typeof v === 'string' ? v : v === null ? '' : JSON.stringify(v));

/** Path/header serialisation (RFC 6570 simple, label, matrix), values encoded by `e`. */
function styled(name, v, style, explode, e) {
  const prefix = style === 'label' ? '.' : style === 'matrix' ? ';' : '';
  const sep = explode && style === 'label' ? '.' : explode && style === 'matrix' ? ';' : ',';
  const named = (x) => (style === 'matrix' ? `${name}=${x}` : x);
  if (Array.isArray(v)) {
    if (style === 'matrix' && explode) return prefix + v.map((x) => `${name}=${e(text(x))}`).join(';');
    return prefix + named(v.map((x) => e(text(x))).join(sep));
  }
  if (v && typeof v === 'object') {
    const parts = Object.entries(v).map(([k, x]) => (explode ? `${e(k)}=${e(text(x))}` : `${e(k)},${e(text(x))}`));
    return prefix + (explode ? parts.join(sep) : named(parts.join(',')));
  }
  return prefix + named(e(text(v)));
}

/** Nested keys: a[b]=1, a[0][c]=2 (brackets literal, names and values percent-encoded). */
function nested(prefix, v, out) {
  if (Array.isArray(v)) v.forEach((x, i) => nested(`${prefix}[${i}]`, x, out));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) nested(prefix ? `${prefix}[${pct(k)}]` : pct(k), x, out);
  else out.push(`${prefix}=${pct(text(v))}`);
}

function query(p, v, out) {
  const style = p.style ?? 'form';
  const explode = p.explode ?? style === 'form';
  const n = pct(p.name);
  if (style === 'deepObject' && v && typeof v === 'object') return nested(n, v, out);
  if (Array.isArray(v)) {
    if (explode && style === 'form') return v.forEach((x) => out.push(`${n}=${pct(text(x))}`));
    if (!v.length) return;
    const sep = style === 'spaceDelimited' ? '%20' : style === 'pipeDelimited' ? '|' : ',';
    return out.push(`${n}=${v.map((x) => pct(text(x))).join(sep)}`);
  }
  if (v && typeof v === 'object') {
    if (explode && style === 'form') return Object.entries(v).forEach(([k, x]) => out.push(`${pct(k)}=${pct(text(x))}`));
    const sep = style === 'spaceDelimited' ? '%20' : style === 'pipeDelimited' ? '|' : ',';
    return out.push(`${n}=${Object.entries(v).map(([k, x]) => `${pct(k)}${sep}${pct(text(x))}`).join(sep)}`);
  }
  out.push(`${n}=${pct(text(v))}`);
}

/** A stable sort of k=v pairs by their key: the order of distinct parameters is not part of the
    contract, the order of one parameter's repeated values is. */
export const byKey = (pairs) => pairs.map((p, i) => [p.split('=')[0], i, p]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1])).map((x) => x[2]);

/**
 * The call of operation `o` with generated arguments: {args (for tools/call), expect: {method,
 * path, query (sorted pairs), headers {lower-case name: value}, contentType, body (text), json}}.
 */
export function plan(doc, o, { basePath = '' } = {}) {
  const { args, media, body } = argumentsOf(doc, o);
  const callArgs = {};
  const vals = new Map();
  for (const a of args) {
    const v = value(doc, a.schema, { name: a.wire, ascii: a.in === 'header' || a.in === 'cookie' });
    vals.set(a, v);
    callArgs[a.name] = v;
  }
  let path = basePath;
  path += o.path.replace(/\{([^}]+)\}/g, (_, nm) => {
    const a = args.find((x) => x.in === 'path' && x.wire === nm);
    return styled(nm, vals.get(a), a.param.style ?? 'simple', a.param.explode ?? false, pct);
  });
  const q = [];
  const headers = {};
  const cookies = [];
  for (const a of args) {
    if (!vals.has(a)) continue;
    const v = vals.get(a);
    if (a.in === 'query') query(a.param, v, q);
    if (a.in === 'header') headers[a.wire.toLowerCase()] = styled(a.wire, v, 'simple', a.param.explode ?? false, (x) => x);
    if (a.in === 'cookie') cookies.push(`${a.wire}=${styled(a.wire, v, 'simple', false, pct)}`);
  }
  if (cookies.length) headers.cookie = cookies.join('; ');
  const okStatus = Object.keys(o.op.responses ?? {}).filter((c) => /^2\d\d$/.test(c)).sort()[0] ?? 'default';
  const ok = deref(doc, o.op.responses?.[okStatus]);
  if (Object.keys(ok?.content ?? {}).some((t) => t.includes('json'))) headers.accept = 'application/json';
  const expect = { method: o.method, path, query: byKey(q), headers, contentType: null, body: null, json: undefined };
  const bodyArgs = args.filter((a) => a.in === 'body' && vals.has(a));
  if (media && (bodyArgs.length || body.required)) {
    const obj = bodyArgs[0]?.whole ? vals.get(bodyArgs[0]) : Object.fromEntries(bodyArgs.map((a) => [a.wire, vals.get(a)]));
    expect.contentType = media === '*/*' ? 'application/json' : media;
    if (media.startsWith('application/x-www-form-urlencoded')) {
      const pairs = [];
      nested('', obj, pairs);
      expect.body = byKey(pairs);
    } else expect.json = obj;
  }
  return { args: callArgs, expect, argNames: args.map((a) => a.name) };
}
