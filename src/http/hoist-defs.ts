/**
 * zod's `z.toJSONSchema` gives each schema its own `$defs` (for schemas with an `id`), referenced as
 * `#/$defs/X`. Inside an OpenAPI document such a reference resolves against the document's root, where
 * there are no `$defs`, so no client generator or validator could follow the references in
 * /api/openapi.json. `hoistDefs` moves every `$defs` entry into `components.schemas` and points its
 * references there. A name that two schemas define differently (a request's input and a response's
 * output shape of one concept) gets a numbered name (`Cadence2`), so neither is lost.
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** `node` with its `$defs` moved into `schemas` (which it fills) and its references rewritten. */
export function hoistDefs(node: unknown, schemas: Record<string, unknown>): unknown {
  return visit(node as Json, schemas as Record<string, Json>);
}

function visit(node: Json, schemas: Record<string, Json>): Json {
  if (Array.isArray(node)) return node.map((x) => visit(x, schemas));
  if (node === null || typeof node !== 'object') return node;
  const defs = node['$defs'];
  const renames = new Map<string, string>();
  if (defs && typeof defs === 'object' && !Array.isArray(defs)) {
    for (const [name, def] of Object.entries(defs)) {
      // Compared as it will read once its own references point at components.
      const text = JSON.stringify(def).replaceAll('"#/$defs/', '"#/components/schemas/');
      let target = name;
      for (let n = 2; schemas[target] !== undefined && JSON.stringify(schemas[target]) !== text; n++) {
        target = `${name}${n}`;
      }
      renames.set(name, target);
    }
  }
  const rewrite = (inner: Json): Json => {
    if (Array.isArray(inner)) return inner.map(rewrite);
    if (inner === null || typeof inner !== 'object') return inner;
    const out: Record<string, Json> = {};
    for (const [key, value] of Object.entries(inner)) {
      if (key === '$ref' && typeof value === 'string' && value.startsWith('#/$defs/')) {
        const name = value.slice('#/$defs/'.length);
        out[key] = `#/components/schemas/${renames.get(name) ?? name}`;
      } else out[key] = rewrite(value);
    }
    return out;
  };
  const rewritten = renames.size > 0 ? (rewrite(node) as Record<string, Json>) : node;
  const out: Record<string, Json> = {};
  for (const [key, value] of Object.entries(rewritten)) {
    if (key === '$defs' && renames.size > 0) {
      for (const [name, def] of Object.entries(value as Record<string, Json>)) {
        schemas[renames.get(name)!] = visit(def, schemas);
      }
    } else out[key] = visit(value, schemas);
  }
  return out;
}
