#!/usr/bin/env node
// Regenerates github-openapi.json: GitHub's official OpenAPI description (npm
// @octokit/openapi, pinned in package-lock.json) trimmed to the operations uworker-image
// calls, plus every component they reference. The trimmed file is committed so tests do
// not need the 385 MB package. Run after `npm ci` (with dev dependencies) here:
//   node trim.js [OUT]
'use strict';
const fs = require('fs');
const path = require('path');

// Keep in step with src/github.rs: every request the tool sends is one of these.
const OPERATIONS = [
  'repos/list-releases',
  'repos/get-release-by-tag',
  'repos/create-release',
  'repos/update-release',
  'repos/get-release-asset',
  'repos/delete-release-asset',
  'repos/upload-release-asset',
  'issues/list-comments',
  'issues/create-comment',
  'issues/update-comment',
  'users/get-authenticated',
];
const METHODS = ['get', 'put', 'post', 'patch', 'delete', 'head', 'options', 'trace'];

const out = process.argv[2] || path.join(__dirname, 'github-openapi.json');
const spec = require('@octokit/openapi/generated/api.github.com.json');
const trimmed = {
  openapi: spec.openapi,
  info: { ...spec.info, description: `${spec.info.description} Trimmed by trim.js to: ${OPERATIONS.join(', ')}.` },
  servers: spec.servers,
  paths: {},
  components: {},
};
const found = new Set();
for (const [route, item] of Object.entries(spec.paths)) {
  for (const method of METHODS) {
    const op = item[method];
    if (!op || !OPERATIONS.includes(op.operationId)) continue;
    found.add(op.operationId);
    trimmed.paths[route] = trimmed.paths[route] || {};
    if (item.parameters) trimmed.paths[route].parameters = item.parameters;
    // Prism serves every path on its own address: drop per-operation servers
    // (uploads.github.com) so the upload is checked like the rest.
    const { servers, ...rest } = op;
    trimmed.paths[route][method] = rest;
  }
}
const missing = OPERATIONS.filter((id) => !found.has(id));
if (missing.length) throw new Error(`operations not in the description: ${missing.join(', ')}`);

// Copy referenced components, transitively.
const seen = new Set();
const queue = [trimmed.paths];
while (queue.length) {
  const node = queue.pop();
  if (!node || typeof node !== 'object') continue;
  for (const [key, value] of Object.entries(node)) {
    if (key === '$ref' && typeof value === 'string' && value.startsWith('#/components/')) {
      if (seen.has(value)) continue;
      seen.add(value);
      const [, , kind, name] = value.split('/');
      trimmed.components[kind] = trimmed.components[kind] || {};
      trimmed.components[kind][name] = spec.components[kind][name];
      queue.push(spec.components[kind][name]);
    } else if (typeof value === 'object') {
      queue.push(value);
    }
  }
}
if (spec.components.securitySchemes) trimmed.components.securitySchemes = spec.components.securitySchemes;
fs.writeFileSync(out, `${JSON.stringify(trimmed, null, 1)}\n`);
console.log(`${out}: ${found.size} operations, ${seen.size} components, ${fs.statSync(out).size} bytes`);
