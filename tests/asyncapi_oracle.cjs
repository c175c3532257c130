// The official AsyncAPI parser (and the JSON Schema and YAML libraries it is built on) as
// an oracle for the tests: one request per line on stdin, one JSON answer per line on
// stdout. Started once per test session by tests/asyncapi_support.py.
//
//   {"parse": "<document text, JSON or YAML>"}  -> {"diagnostics": [{code, message, path, severity}]}
//   {"yaml": "<YAML text>"}                      -> {"value": <what js-yaml reads>} or {"error": "..."}
//   {"validate": {"document": {...}, "pointer": "#/components/schemas/X", "data": ...}}
//                                                -> {"valid": true|false, "errors": [...]}
'use strict';

const path = require('path');
const readline = require('readline');

const modules = path.join(process.argv[2], 'node_modules');
const load = (name) => require(path.join(modules, name));
const { Parser } = load('@asyncapi/parser');
const yaml = load('js-yaml');
const Ajv = load('ajv').default;
const addFormats = load('ajv-formats').default;

const parser = new Parser();
const SEVERITY = ['error', 'warning', 'info', 'hint'];

async function parse(text) {
  const { diagnostics } = await parser.parse(text);
  return {
    diagnostics: diagnostics.map((d) => ({
      code: String(d.code),
      message: d.message,
      path: d.path.join('/'),
      severity: SEVERITY[d.severity] || String(d.severity),
    })),
  };
}

function readYaml(text) {
  try {
    // js-yaml's default schema: YAML 1.2's core types plus timestamps and merge keys, so
    // a string that some reader takes for something else is caught.
    return { value: yaml.load(text) };
  } catch (error) {
    return { error: String(error.message || error) };
  }
}

function validate({ document, pointer, data }) {
  // The components are one schema resource, so `#/components/...` references resolve
  // (the rest of the document is not JSON Schema); AsyncAPI's own keywords (x-...,
  // discriminator) are not JSON Schema either: not strict.
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addSchema({ $id: 'urn:asyncapi:document', components: document.components });
  const check = ajv.getSchema(`urn:asyncapi:document${pointer}`);
  if (!check) {
    return { valid: false, errors: [`no schema at ${pointer}`] };
  }
  const valid = check(data);
  return { valid, errors: (check.errors || []).map((e) => `${e.instancePath} ${e.message}`) };
}

async function answer(line) {
  const request = JSON.parse(line);
  if ('parse' in request) return parse(request.parse);
  if ('yaml' in request) return readYaml(request.yaml);
  if ('validate' in request) return validate(request.validate);
  return { error: `unknown request: ${Object.keys(request)}` };
}

const input = readline.createInterface({ input: process.stdin, terminal: false });
let queue = Promise.resolve();
input.on('line', (line) => {
  // One answer per request, in order, even though parsing is asynchronous.
  queue = queue.then(async () => {
    let reply;
    try {
      reply = await answer(line);
    } catch (error) {
      reply = { error: String((error && error.stack) || error) };
    }
    process.stdout.write(`${JSON.stringify(reply)}\n`);
  });
});
