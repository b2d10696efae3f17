// JSON schemas for kubeconform, made offline: the built-in kinds from the OpenAPI document the
// real kube-apiserver serves (/openapi/v2), the agent-sandbox kinds from the CRDs in shared/.
// Strict like kubeconform's own catalogue: an object with known properties admits no others.
import fs from 'node:fs';
import path from 'node:path';
import { crdDir, yamlDocs, type ControlPlane } from './control-plane.ts';

type Schema = Record<string, unknown> & {
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema | boolean;
  $ref?: string;
};

const GVK = 'x-kubernetes-group-version-kind';

/** Writes `<kind>-<group>-<version>.json` (kubeconform's KindSuffix naming) for every built-in kind. */
export async function writeBuiltinSchemas(plane: ControlPlane, dir: string): Promise<number> {
  const doc = await plane.request<{ definitions: Record<string, Schema> }>('GET', '/openapi/v2');
  const defs = Object.fromEntries(Object.entries(doc.definitions).map(([name, s]) => [name, strict(fixTypes(name, s))]));
  let written = 0;
  for (const [name, def] of Object.entries(doc.definitions)) {
    if (!name.startsWith('io.k8s.')) continue; // custom resources come from their CRDs (writeCrdSchemas)
    for (const gvk of (def[GVK] as { group: string; version: string; kind: string }[] | undefined) ?? []) {
      if (!def.properties?.apiVersion) continue; // lists and options, not resources
      const group = gvk.group.split('.')[0];
      const file = `${gvk.kind}${group ? `-${group}` : ''}-${gvk.version}.json`.toLowerCase();
      const schema = { ...defs[name], definitions: reachable(name, defs) };
      fs.writeFileSync(path.join(dir, file), JSON.stringify(schema));
      written++;
    }
  }
  return written;
}

/** Writes `<group>/<kind>_<version>.json` for every version of every agent-sandbox CRD. */
export function writeCrdSchemas(dir: string): number {
  let written = 0;
  for (const file of fs.readdirSync(crdDir).filter((f) => f.endsWith('.yaml'))) {
    for (const crd of yamlDocs(fs.readFileSync(path.join(crdDir, file), 'utf8')) as CRD[]) {
      fs.mkdirSync(path.join(dir, crd.spec.group), { recursive: true });
      for (const version of crd.spec.versions) {
        const out = path.join(dir, crd.spec.group, `${crd.spec.names.kind}_${version.name}.json`.toLowerCase());
        fs.writeFileSync(out, JSON.stringify(strict(intOrString(version.schema.openAPIV3Schema))));
        written++;
      }
    }
  }
  return written;
}

interface CRD {
  spec: { group: string; names: { kind: string }; versions: { name: string; schema: { openAPIV3Schema: Schema } }[] };
}

// OpenAPI v2 writes IntOrString as a formatted string and Quantity as a plain string, but YAML
// manifests write `port: 80` and `cpu: 1`.
function fixTypes(name: string, s: Schema): Schema {
  if (name === 'io.k8s.apimachinery.pkg.util.intstr.IntOrString') return { oneOf: [{ type: 'string' }, { type: 'integer' }] };
  if (name === 'io.k8s.apimachinery.pkg.api.resource.Quantity') return { oneOf: [{ type: 'string' }, { type: 'number' }] };
  return s;
}

function intOrString(s: Schema): Schema {
  return walk(s, (node) => {
    if (node['x-kubernetes-int-or-string'] && !node.anyOf) {
      const { type: _type, ...rest } = node;
      return { ...rest, anyOf: [{ type: 'integer' }, { type: 'string' }] };
    }
    return node;
  });
}

function strict(s: Schema): Schema {
  return walk(s, (node) =>
    node.properties && node.additionalProperties === undefined && !node['x-kubernetes-preserve-unknown-fields']
      ? { ...node, additionalProperties: false }
      : node,
  );
}

function walk(s: Schema, fn: (node: Schema) => Schema): Schema {
  const node = fn({ ...s });
  if (node.properties) node.properties = Object.fromEntries(Object.entries(node.properties).map(([k, v]) => [k, walk(v, fn)]));
  if (node.items) node.items = walk(node.items, fn);
  if (node.additionalProperties && typeof node.additionalProperties === 'object') node.additionalProperties = walk(node.additionalProperties, fn);
  for (const key of ['anyOf', 'oneOf', 'allOf'] as const) {
    if (Array.isArray(node[key])) node[key] = (node[key] as Schema[]).map((v) => walk(v, fn));
  }
  return node;
}

/** The definitions a root definition refers to, transitively (keeps each schema file small). */
function reachable(root: string, defs: Record<string, Schema>): Record<string, Schema> {
  const out: Record<string, Schema> = {};
  const visit = (name: string) => {
    if (out[name] || !defs[name]) return;
    out[name] = defs[name];
    for (const m of JSON.stringify(defs[name]).matchAll(/"#\/definitions\/([^"]+)"/g)) visit(m[1]!);
  };
  visit(root);
  return out;
}
