/**
 * What a chart spec may hold. A Vega-Lite spec comes from a notebook (an editor's text) or from a run's
 * output (whatever the child process sent), and is drawn in every viewer's browser and in the
 * screenshot browser. Anything in it that makes the renderer fetch — `data.url`, a `url`/`href` encoding
 * or mark property, an image mark's URL, a loader or base URL — would let a notebook author make those
 * browsers request arbitrary (internal) addresses, so it is refused at every depth, in layers, concats,
 * facets, repeats, lookups, transforms and config alike. Charts draw only from inline `values` and the
 * datasets the run supplies by name.
 */

/** Keys whose presence anywhere in a spec makes the renderer load or link to a URL. */
const FETCHING_KEYS: ReadonlySet<string> = new Set(['url', 'href', 'loader', 'baseURL', 'baseUrl']);

/** Nesting deeper than this is refused: no real chart needs it, and a walk must stay bounded. */
const MAX_DEPTH = 64;

/**
 * The first reason `spec` is unsafe to render, as `path: reason`, or null when it is safe.
 * @example chartSpecProblem({ layer: [{ data: { url: 'http://10.0.0.1/' } }] }) // 'layer[0].data.url: …'
 */
export function chartSpecProblem(spec: unknown): string | null {
  const walk = (node: unknown, path: string, depth: number): string | null => {
    if (depth > MAX_DEPTH) return `${path || 'spec'}: nested more than ${MAX_DEPTH} levels deep`;
    if (Array.isArray(node)) {
      for (const [i, item] of node.entries()) {
        const problem = walk(item, `${path}[${i}]`, depth + 1);
        if (problem) return problem;
      }
      return null;
    }
    if (node === null || typeof node !== 'object') return null;
    for (const [key, value] of Object.entries(node)) {
      const at = path ? `${path}.${key}` : key;
      if (FETCHING_KEYS.has(key)) {
        return `${at}: charts may not load or link to URLs; give the chart its data with "data": { "name": "<an earlier cell>" } or inline "values"`;
      }
      const problem = walk(value, at, depth + 1);
      if (problem) return problem;
    }
    return null;
  };
  return walk(spec, '', 0);
}
