#!/usr/bin/env node
// Static checks of the k6 scripts in this directory, for machines without k6 (CI runs only this):
//   node loadtest/k6/check.mjs [--router FILE]
//
// 1. Syntax: every *.js here parses as an ES module (`node --check --input-type=module`, fed on
//    stdin, so no copy and no package.json is needed).
// 2. Imports: only k6's own modules (and names this checker knows they export) and ./lib.js (and
//    names lib.js exports); every script but lib.js exports `options` and a default function.
// 3. Paths: every path a script calls, written as `${PUBLIC_URL}/…` or `${ADMIN_URL}/…` (template
//    literal), PUBLIC_URL + '/…' / ADMIN_URL + '/…', or publicPath('/…') / adminPath('/…'), is
//    routed by src/server/router.rs (or FILE): a literal of a match arm of public() (public
//    paths) or admin() (admin paths, `/admin` prefix stripped as route() strips it), health()'s
//    arms for both when they call it, or under a prefix their strip_prefix("…") calls handle.
//    When the call names its method (http.get/post/put/del/patch(…), or 'METHOD' before the URL,
//    as in http.request and http.batch), the arm's Allow list must hold it.
// Prints one line per script; exits 1 with one line per problem.

import { readFileSync, readdirSync } from 'node:fs';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..');
const argRouter = process.argv.indexOf('--router');
const routerFile = argRouter > 0 ? process.argv[argRouter + 1] : join(repo, 'src', 'server', 'router.rs');
const shown = (p) => relative(process.cwd(), p) || p;

const problems = [];
const fail = (msg) => problems.push(msg);

// Names exported by the k6 modules these scripts may import (k6's own JS module sources).
const K6_EXPORTS = {
  'k6': ['check', 'fail', 'group', 'sleep', 'randomSeed', 'default'],
  'k6/http': ['default'],
  'k6/metrics': ['Counter', 'Gauge', 'Rate', 'Trend', 'default'],
  'k6/crypto': ['createHash', 'createHMAC', 'hmac', 'md4', 'md5', 'randomBytes', 'ripemd160', 'sha1', 'sha256',
    'sha384', 'sha512', 'sha512_224', 'sha512_256', 'hexEncode', 'default'],
  'k6/encoding': ['b64encode', 'b64decode', 'default'],
};

// ---- router.rs ---------------------------------------------------------------------------------

let routerText;
try {
  routerText = readFileSync(routerFile, 'utf8');
} catch (e) {
  console.error(`cannot read ${shown(routerFile)}: ${e.message}`);
  process.exit(1);
}

// The body of `fn NAME(` up to the first line that is a lone `}` (rustfmt's end of an item).
function fnBody(name) {
  const start = routerText.search(new RegExp(`\\nfn ${name}\\(`));
  if (start < 0) return null;
  const end = routerText.indexOf('\n}\n', start);
  return routerText.slice(start, end < 0 ? undefined : end);
}

// Match-arm literals (`"/a" =>`, `"/a" | "/b" =>`) with the Allow list of each arm (the first
// string of upper-case method names after it), and the strip_prefix("…") prefixes.
function routesOf(body) {
  const literals = new Map();
  // (not a guard's `path == "/x" =>`)
  const arm = /(?<!==\s*)"(\/[^"\\]*)"(?=\s*(?:\||=>))/g;
  const found = [];
  let m;
  while ((m = arm.exec(body)) !== null) found.push({ path: m[1], at: m.index });
  for (let i = 0; i < found.length; i++) {
    // The arm's text: up to the next arm literal (or the end of the function).
    const next = i + 1 < found.length ? found[i + 1].at : body.length;
    let j = i + 1; // literals joined with `|` share the arm after the last of them
    while (j < found.length && /^"[^"]*"\s*\|\s*$/.test(body.slice(found[j - 1].at, found[j].at))) j++;
    const armText = body.slice(found[j - 1].at, j < found.length ? found[j].at : next);
    const allow = /"((?:GET|HEAD|POST|PUT|PATCH|DELETE)(?:, (?:GET|HEAD|POST|PUT|PATCH|DELETE))*)"/.exec(armText);
    literals.set(found[i].path, allow ? allow[1].split(', ') : null);
  }
  const prefixes = [];
  const sp = /strip_prefix\("(\/[^"\\]*)"\)/g;
  while ((m = sp.exec(body)) !== null) prefixes.push(m[1]);
  return { literals, prefixes };
}

const listeners = {};
for (const api of ['public', 'admin']) {
  const body = fnBody(api);
  if (body === null) {
    fail(`${shown(routerFile)}: no \`fn ${api}(\` found`);
    continue;
  }
  const r = routesOf(body);
  const health = /\bhealth\(/.test(body) ? fnBody('health') : null;
  if (health !== null) for (const [p, a] of routesOf(health).literals) r.literals.set(p, a);
  listeners[api] = r;
}
const stripsAdmin = /strip_prefix\("\/admin"\)/.test(routerText);

function routed(api, path) {
  const r = listeners[api];
  if (!r) return { ok: false };
  let p = path.value;
  if (api === 'admin' && stripsAdmin && (p === '/admin' || p.startsWith('/admin/'))) p = p.slice('/admin'.length) || '/';
  if (!path.open && r.literals.has(p)) return { ok: true, allow: r.literals.get(p), as: p };
  for (const prefix of r.prefixes) {
    if (!p.startsWith(prefix)) continue;
    const rest = p.slice(prefix.length);
    // "/clients/" routes "/clients/{id}…"; "/x/issuers" routes "/x/issuers" and "/x/issuers/…".
    if (prefix.endsWith('/') ? rest.length > 0 || path.open : rest === '' || rest.startsWith('/')) {
      return { ok: true, allow: null, as: p };
    }
  }
  return { ok: false, as: p };
}

// ---- scripts -----------------------------------------------------------------------------------

const files = readdirSync(here).filter((f) => f.endsWith('.js')).sort();
if (files.length === 0) fail(`no *.js scripts in ${shown(here)}`);
const sources = Object.fromEntries(files.map((f) => [f, readFileSync(join(here, f), 'utf8')]));

function exportsOf(src) {
  const names = new Set();
  const re = /^export\s+(?:async\s+)?(?:function\s*\*?\s*|const\s+|let\s+|var\s+|class\s+)([A-Za-z_$][\w$]*)/gm;
  let m;
  while ((m = re.exec(src)) !== null) names.add(m[1]);
  if (/^export\s+default\b/m.test(src)) names.add('default');
  return names;
}

// Comments out, strings and template literals kept (the paths live in them).
function stripComments(src) {
  // Same length, so that offsets still give line numbers.
  return src
    .replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ' '))
    .replace(/(^|[^:'"`\\])(\/\/.*)$/gm, (all, pre, c) => pre + ' '.repeat(c.length));
}

function pathsOf(src) {
  const code = stripComments(src);
  const out = [];
  const add = (api, value, open, at, method) => out.push({ api, value, open, at, method: method || null });
  // `${PUBLIC_URL}/a/b?…`, `${ADMIN_URL}/a/${id}`: the literal part, open when `${` follows it.
  const tpl = /\$\{\s*(PUBLIC_URL|ADMIN_URL)\s*\}(\/[^`?#$\s]*)(\$\{)?/g;
  let m;
  while ((m = tpl.exec(code)) !== null) add(m[1] === 'PUBLIC_URL' ? 'public' : 'admin', m[2], !!m[3], m.index);
  const cat = /\b(PUBLIC_URL|ADMIN_URL)\s*\+\s*(['"`])(\/[^'"`?#$\s]*)/g;
  while ((m = cat.exec(code)) !== null) add(m[1] === 'PUBLIC_URL' ? 'public' : 'admin', m[3], false, m.index);
  const marker = /\b(publicPath|adminPath)\(\s*(['"])(\/[^'"?#]*)\2\s*\)/g;
  while ((m = marker.exec(code)) !== null) add(m[1] === 'publicPath' ? 'public' : 'admin', m[3], false, m.index);
  // Methods named at the call: http.get(`${…`, 'PUT', `${…` (http.request, http.batch, helpers),
  // browserGet(jar, `${…` (lib.js's GET in a cookie jar).
  const verbs = { get: 'GET', post: 'POST', put: 'PUT', del: 'DELETE', patch: 'PATCH', head: 'HEAD' };
  const calls = [
    [/\bhttp\.(get|post|put|del|patch|head)\(\s*`/g, (x) => verbs[x[1]]],
    [/'(GET|POST|PUT|PATCH|DELETE|HEAD)'\s*,\s*`/g, (x) => x[1]],
    [/\bbrowserGet\(\s*[A-Za-z_$][\w$]*\s*,\s*`/g, () => 'GET'],
  ];
  for (const [re, verb] of calls) {
    while ((m = re.exec(code)) !== null) {
      const urlAt = m.index + m[0].length;
      const hit = out.find((p) => p.at === urlAt);
      if (hit) hit.method = verb(m);
    }
  }
  return out.sort((a, b) => a.at - b.at);
}

const libExports = sources['lib.js'] !== undefined ? exportsOf(sources['lib.js']) : new Set();
const lines = [];

for (const f of files) {
  const src = sources[f];
  const before = problems.length;

  // 1. Syntax, as an ES module.
  const r = spawnSync(process.execPath, ['--check', '--input-type=module'], { input: src, encoding: 'utf8' });
  if (r.status !== 0) {
    const msg = (r.stderr || r.error?.message || 'unknown error').split('\n').filter((l) => l.trim() && !/^\s+at /.test(l) && !/^Node\.js v/.test(l));
    fail(`${f}: does not parse as an ES module: ${msg.join(' | ').replace(/\[stdin\]/g, f)}`);
  }

  // 2. Imports and exports.
  const imp = /^import\s+([\s\S]*?)\s+from\s+(['"])([^'"]+)\2/gm;
  let m;
  while ((m = imp.exec(src)) !== null) {
    const [, clause, , mod] = m;
    const names = [];
    const def = /^([A-Za-z_$][\w$]*)/.exec(clause.trim());
    if (def) names.push('default');
    const braces = /\{([\s\S]*)\}/.exec(clause);
    if (braces) {
      for (const part of braces[1].split(',').map((s) => s.trim()).filter(Boolean)) names.push(part.split(/\s+as\s+/)[0]);
    }
    let known;
    if (mod in K6_EXPORTS) known = new Set(K6_EXPORTS[mod]);
    else if (mod === './lib.js') known = libExports;
    else {
      fail(`${f}: imports '${mod}' (only k6's modules and ./lib.js are allowed)`);
      continue;
    }
    for (const n of names) if (!known.has(n)) fail(`${f}: '${mod}' has no export named '${n}'`);
  }
  if (f !== 'lib.js') {
    const ex = exportsOf(src);
    if (!ex.has('options')) fail(`${f}: no \`export const options\``);
    if (!/^export\s+default\s+function\b/m.test(src)) fail(`${f}: no \`export default function\``);
  }

  // 3. Paths against the router.
  const paths = pathsOf(src);
  const shownPaths = [];
  for (const p of paths) {
    const where = `${f}:${src.slice(0, p.at).split('\n').length}`;
    const res = routed(p.api, p);
    const label = `${p.method || '*'} ${p.value}${p.open ? '…' : ''}`;
    if (!res.ok) {
      const stripped = res.as && res.as !== p.value ? ` (${res.as} after the /admin prefix)` : '';
      fail(`${where}: ${p.api} path ${p.value}${p.open ? '…' : ''}${stripped} is not routed by ${p.api}() in ${shown(routerFile)}`);
    } else if (p.method && res.allow && !res.allow.includes(p.method)) {
      fail(`${where}: ${p.method} ${p.value}: the router allows ${res.allow.join(', ')} there`);
    }
    const same = shownPaths.findIndex((l) => l.endsWith(` ${p.value}${p.open ? '…' : ''}`));
    if (same < 0) shownPaths.push(label);
    else if (shownPaths[same].startsWith('* ')) shownPaths[same] = label;
  }
  if (f !== 'lib.js' && paths.length === 0 && !/from\s+'\.\/lib\.js'/.test(src)) {
    fail(`${f}: calls no path this checker can see (write them as \`\${PUBLIC_URL}/…\` or \`\${ADMIN_URL}/…\`)`);
  }
  if (problems.length === before) {
    lines.push(`ok   ${f}: module syntax, imports, ${paths.length} path(s) routed: ${shownPaths.join(', ') || '(none of its own)'}`);
  } else {
    lines.push(`FAIL ${f}`);
  }
}

for (const l of lines) console.log(l);
if (problems.length > 0) {
  console.error(`\n${problems.length} problem(s):`);
  for (const p of problems) console.error(`  ${p}`);
  process.exit(1);
}
