#!/usr/bin/env node
/*
 * otlp_decode.js - decode OTLP/HTTP request bodies with a decoder that is
 * not ours, into JSON that tests can assert on.
 *
 * The one idea: the schema comes from the official opentelemetry-proto
 * .proto files and the decoding from protobufjs, both fetched from npm on
 * first use into a cache directory (under the build tree), so a test of
 * sonde's encoder never trusts sonde's own idea of the field numbers.
 *
 *   .proto files  the opentelemetry-proto v1.4.0 files shipped in the npm
 *                 package @elastic/mockotlpserver@0.10.0 (tarball checked
 *                 against its pinned sha512; only opentelemetry/ is kept)
 *   decoder       protobufjs@7.5.4 (npm), loading those .proto files
 *
 * Output (one JSON document per input, an array for several): the OTLP JSON
 * form of the request - lowerCamelCase names, trace/span ids as lowercase
 * hex, enums as integers, 64-bit integers as decimal strings - the same
 * shape for protobuf and JSON bodies.
 *
 * Strictness. Protobuf: the decoded message is encoded again and must give
 * back the input byte for byte, so unknown fields (wrong field numbers),
 * wrong wire types and non-canonical encodings all fail. JSON: every key
 * must be a field of the official schema in lowerCamelCase, ids must be hex
 * of the right length, 64-bit integers strings, enums integers.
 *
 * Usage:
 *   node otlp_decode.js [--cache DIR] --setup
 *       install if needed; print the directory holding opentelemetry/proto/**
 *       (for `protoc -I DIR`); exit 0, or 3 when npm cannot provide it
 *   node otlp_decode.js [--cache DIR] [--signal traces|metrics] [--json] FILE...
 *       decode bodies (gzip is detected by its magic bytes); the signal and
 *       the encoding come from the receiver's FILE.meta.json sidecar when
 *       present, else from the options, else from "traces"/"metrics" in the
 *       file name
 *   node otlp_decode.js [--cache DIR] --dir DIR
 *       every request otlp_receiver.py stored in DIR, in arrival order:
 *       [{"meta": {...}, "request": {...}}, ...]
 * Exit codes: 0 ok, 1 decode/validation error (message on stderr),
 * 2 usage, 3 decoder unavailable.
 * Cache: --cache, else $SONDE_OTLP_DECODER_DIR, else $SONDE_BUILD/otlp-decoder,
 * else <tmpdir>/sonde-otlp-decoder.
 */
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const zlib = require('zlib');
const { execFileSync } = require('child_process');

const PROTO_PKG = '@elastic/mockotlpserver@0.10.0';
const PROTO_TGZ = 'elastic-mockotlpserver-0.10.0.tgz';
const PROTO_SHA512 =
  'Oau6R/achnZd+ih5HPAsfmFddVZPJrHzoRSgeg3Rn3AhkQaIRvp7uKrERqv1Cn/irfaGxaAOPBBd+oq+JMfqHg==';
const PROTOBUFJS = 'protobufjs@7.5.4';
const STAMP = 'otlp-proto-1.4.0+protobufjs-7.5.4';

const REQ = {
  traces: {
    file: 'opentelemetry/proto/collector/trace/v1/trace_service.proto',
    type: 'opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest',
  },
  metrics: {
    file: 'opentelemetry/proto/collector/metrics/v1/metrics_service.proto',
    type: 'opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest',
  },
};
/* bytes fields that OTLP JSON writes as hex, with their lengths */
const HEX_IDS = { traceId: 16, spanId: 8, parentSpanId: 8 };

class Unavailable extends Error {}
class Invalid extends Error {}

function cacheDir(opt) {
  if (opt) return path.resolve(opt);
  if (process.env.SONDE_OTLP_DECODER_DIR) return path.resolve(process.env.SONDE_OTLP_DECODER_DIR);
  if (process.env.SONDE_BUILD) return path.join(process.env.SONDE_BUILD, 'otlp-decoder');
  return path.join(os.tmpdir(), 'sonde-otlp-decoder');
}

function run(cmd, args, cwd) {
  try {
    return execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: 300000 });
  } catch (e) {
    const err = e.stderr ? e.stderr.toString().trim().split('\n').slice(-3).join(' | ') : e.message;
    throw new Unavailable(`${cmd} ${args.join(' ')} failed: ${err}`);
  }
}

/* mkdir -p, by hand: Node's recursive mkdirSync spins forever on some
 * unwritable paths (under /proc, for one). */
function mkdirs(dir) {
  const parts = path.resolve(dir).split(path.sep);
  let cur = path.sep;
  for (const p of parts) {
    if (!p) continue;
    cur = path.join(cur, p);
    try {
      fs.mkdirSync(cur);
    } catch (e) {
      if (e.code !== 'EEXIST') throw new Unavailable(`cannot create ${cur}: ${e.code}`);
    }
  }
}

/* Build the decoder in a private directory, then rename it into place, so
 * concurrent first uses (ctest -j) never see a half-installed one. */
function install(dir) {
  const ready = path.join(dir, STAMP);
  if (fs.existsSync(path.join(ready, 'ok'))) return ready;
  mkdirs(dir);
  const tmp = fs.mkdtempSync(path.join(dir, 'tmp-'));
  try {
    run('npm', ['pack', PROTO_PKG, '--pack-destination', tmp, '--silent'], tmp);
    const tgz = path.join(tmp, PROTO_TGZ);
    const sum = require('crypto').createHash('sha512').update(fs.readFileSync(tgz)).digest('base64');
    if (sum !== PROTO_SHA512) throw new Unavailable(`${PROTO_TGZ}: sha512 mismatch (${sum})`);
    const protos = path.join(tmp, 'protos');
    fs.mkdirSync(protos);
    run('tar', ['xzf', tgz, '-C', protos, '--strip-components=1', 'package/opentelemetry'], tmp);
    fs.unlinkSync(tgz);
    fs.writeFileSync(path.join(tmp, 'package.json'), '{"private": true}\n');
    run('npm', ['install', '--no-audit', '--no-fund', '--no-package-lock', '--ignore-scripts',
                '--silent', PROTOBUFJS], tmp);
    fs.writeFileSync(path.join(tmp, 'ok'), `${PROTO_PKG} ${PROTOBUFJS}\n`);
    try {
      fs.renameSync(tmp, ready);
    } catch (e) {
      if (!fs.existsSync(path.join(ready, 'ok'))) throw e; /* someone else won the race */
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    if (e instanceof Unavailable) throw e;
    throw new Unavailable(e.message);
  }
  return ready;
}

function loadRoot(ready) {
  const protobuf = require(path.join(ready, 'node_modules', 'protobufjs'));
  const protos = path.join(ready, 'protos');
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => path.join(protos, target);
  root.loadSync([REQ.traces.file, REQ.metrics.file], { keepCase: false });
  root.resolveAll();
  return { protobuf, root };
}

const INT64 = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const INT32 = new Set(['int32', 'uint32', 'sint32', 'fixed32', 'sfixed32']);

/* base64 bytes -> hex, recursively, following the schema */
function hexify(type, obj) {
  for (const f of type.fieldsArray) {
    const v = obj[f.name];
    if (v === undefined) continue;
    const conv = (x) => {
      if (f.type === 'bytes') return Buffer.from(x, 'base64').toString('hex');
      if (f.resolvedType && f.resolvedType.fieldsArray) return hexify(f.resolvedType, x);
      return x;
    };
    obj[f.name] = f.repeated ? v.map(conv) : conv(v);
  }
  return obj;
}

const TO_OBJECT = { longs: String, enums: Number, bytes: String, json: true, defaults: false };

function decodeProto(T, buf) {
  let msg;
  try {
    msg = T.decode(buf);
  } catch (e) {
    throw new Invalid(`protobuf decode failed: ${e.message}`);
  }
  const again = Buffer.from(T.encode(msg).finish());
  if (!again.equals(buf)) {
    let i = 0;
    while (i < again.length && i < buf.length && again[i] === buf[i]) i++;
    throw new Invalid(`re-encoding differs from the body at byte ${i} of ${buf.length} ` +
                      `(unknown field, wrong wire type or non-canonical encoding)`);
  }
  return hexify(T, T.toObject(msg, TO_OBJECT));
}

/* Check an OTLP JSON value against field f; returns the value protobufjs'
 * fromObject wants (ids hex -> base64). where: a path for messages. */
function checkField(f, v, where) {
  const one = (x, w) => {
    if (f.resolvedType && f.resolvedType.fieldsArray) return checkMessage(f.resolvedType, x, w);
    if (f.resolvedType) { /* enum */
      if (!Number.isInteger(x)) throw new Invalid(`${w}: enum must be an integer, got ${JSON.stringify(x)}`);
      return x;
    }
    if (INT64.has(f.type)) {
      if (typeof x !== 'string' || !/^-?[0-9]+$/.test(x))
        throw new Invalid(`${w}: 64-bit integer must be a decimal string, got ${JSON.stringify(x)}`);
      return x;
    }
    if (INT32.has(f.type)) {
      if (!Number.isInteger(x)) throw new Invalid(`${w}: must be an integer, got ${JSON.stringify(x)}`);
      return x;
    }
    if (f.type === 'double' || f.type === 'float') {
      if (typeof x === 'number' || ['NaN', 'Infinity', '-Infinity'].includes(x)) return x;
      throw new Invalid(`${w}: must be a number, got ${JSON.stringify(x)}`);
    }
    if (f.type === 'bool') {
      if (typeof x !== 'boolean') throw new Invalid(`${w}: must be true/false`);
      return x;
    }
    if (f.type === 'string') {
      if (typeof x !== 'string') throw new Invalid(`${w}: must be a string`);
      return x;
    }
    if (f.type === 'bytes') {
      const len = HEX_IDS[f.name];
      if (len === undefined) return x; /* other bytes fields: base64 as in proto3 JSON */
      if (typeof x !== 'string' || !/^[0-9a-f]*$/.test(x) || (x.length !== 2 * len && x.length !== 0))
        throw new Invalid(`${w}: must be ${2 * len} lowercase hex digits, got ${JSON.stringify(x)}`);
      return Buffer.from(x, 'hex').toString('base64');
    }
    throw new Invalid(`${w}: unhandled field type ${f.type}`);
  };
  if (f.repeated) {
    if (!Array.isArray(v)) throw new Invalid(`${where}: must be an array`);
    return v.map((x, i) => one(x, `${where}[${i}]`));
  }
  return one(v, where);
}

function checkMessage(T, obj, where) {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj))
    throw new Invalid(`${where}: must be an object`);
  const out = {};
  for (const [k, v] of Object.entries(obj)) {
    const f = T.fields[k];
    if (!f || f.name !== k)
      throw new Invalid(`${where}.${k}: not a field of ${T.fullName.slice(1)} (lowerCamelCase names only)`);
    out[k] = checkField(f, v, `${where}.${k}`);
  }
  return out;
}

function decodeJson(T, buf) {
  let doc;
  try {
    doc = JSON.parse(buf.toString('utf8'));
  } catch (e) {
    throw new Invalid(`not JSON: ${e.message}`);
  }
  const plain = checkMessage(T, doc, '$');
  const msg = T.fromObject(plain);
  return hexify(T, T.toObject(T.decode(T.encode(msg).finish()), TO_OBJECT));
}

function readMeta(file) {
  const m = file.replace(/\.body$/, '') + '.meta.json';
  if (m === file || !fs.existsSync(m)) return null;
  return JSON.parse(fs.readFileSync(m, 'utf8'));
}

function decodeFile(ctx, file, opts) {
  let buf = file === '-' ? fs.readFileSync(0) : fs.readFileSync(file);
  const meta = file === '-' ? null : readMeta(file);
  let signal = opts.signal || (meta && meta.signal);
  if (!signal) signal = /metrics/.test(path.basename(file)) ? 'metrics'
                      : /traces/.test(path.basename(file)) ? 'traces' : null;
  if (!REQ[signal]) throw new Invalid(`${file}: unknown signal (use --signal traces|metrics)`);
  let json = opts.json;
  if (!json && meta && meta.content_type) json = /json/i.test(meta.content_type);
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) buf = zlib.gunzipSync(buf);
  const T = ctx.root.lookupType(REQ[signal].type);
  try {
    return json ? decodeJson(T, buf) : decodeProto(T, buf);
  } catch (e) {
    if (e instanceof Invalid) e.message = `${file} (${signal}, ${json ? 'json' : 'protobuf'}): ${e.message}`;
    throw e;
  }
}

function usage() {
  process.stderr.write('usage: otlp_decode.js [--cache DIR] (--setup | --dir DIR | ' +
                       '[--signal traces|metrics] [--json] FILE...)\n');
  process.exit(2);
}

function main(argv) {
  const opts = { files: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--cache') opts.cache = argv[++i];
    else if (a === '--setup') opts.setup = true;
    else if (a === '--dir') opts.dir = argv[++i];
    else if (a === '--signal') opts.signal = argv[++i];
    else if (a === '--json') opts.json = true;
    else if (a === '-h' || a === '--help') usage();
    else if (a.startsWith('--')) usage();
    else opts.files.push(a);
  }
  if (!opts.setup && !opts.dir && !opts.files.length) usage();
  let ready;
  try {
    ready = install(cacheDir(opts.cache));
  } catch (e) {
    process.stderr.write(`otlp_decode: decoder unavailable: ${e.message}\n`);
    process.exit(3);
  }
  if (opts.setup) {
    process.stdout.write(path.join(ready, 'protos') + '\n');
    return;
  }
  const ctx = loadRoot(ready);
  let out;
  try {
    if (opts.dir) {
      const files = fs.readdirSync(opts.dir).filter((f) => f.endsWith('.body')).sort();
      out = files.map((f) => {
        const file = path.join(opts.dir, f);
        const meta = readMeta(file);
        return { meta, request: decodeFile(ctx, file, {}) };
      });
    } else {
      const docs = opts.files.map((f) => decodeFile(ctx, f, opts));
      out = docs.length === 1 ? docs[0] : docs;
    }
  } catch (e) {
    if (!(e instanceof Invalid)) throw e;
    process.stderr.write(`otlp_decode: ${e.message}\n`);
    process.exit(1);
  }
  process.stdout.write(JSON.stringify(out, null, 1) + '\n');
}

main(process.argv.slice(2));
