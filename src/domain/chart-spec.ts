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

/**
 * `usermeta.embedOptions` is read by vega-embed as options that override the page's own: it could turn
 * the expression interpreter off, load a config or patch by URL, or inject CSS and HTML. A chart never
 * needs it, so it is refused at every depth.
 */
const RENDERER_KEYS: ReadonlySet<string> = new Set(['embedOptions']);

/** Nesting deeper than this is refused: no real chart needs it, and a walk must stay bounded. */
const MAX_DEPTH = 64;

/** Why a spec is unsafe to render: where (`layer[0].data.url`), what kind of problem, and what to do. */
export interface ChartSpecIssue {
  /** The path of the offending key, like `layer[0].data.url`. */
  path: string;
  /** `fetch`: it would load or link to a URL; `renderer`: it sets the renderer's options; `depth`: too deep. */
  kind: 'fetch' | 'renderer' | 'depth';
  /** One sentence: what is wrong and what to do. */
  message: string;
}

/**
 * The first reason `spec` is unsafe to render, or null when it is safe. The web app uses this to draw an
 * error box instead of the chart; the notebook parser uses `chartSpecProblem`.
 */
export function chartSpecIssue(spec: unknown): ChartSpecIssue | null {
  const walk = (node: unknown, path: string, depth: number): ChartSpecIssue | null => {
    if (depth > MAX_DEPTH) {
      return { path: path || 'spec', kind: 'depth', message: `nested more than ${MAX_DEPTH} levels deep` };
    }
    if (Array.isArray(node)) {
      for (const [i, item] of node.entries()) {
        const issue = walk(item, `${path}[${i}]`, depth + 1);
        if (issue) return issue;
      }
      return null;
    }
    if (node === null || typeof node !== 'object') return null;
    for (const [key, value] of Object.entries(node)) {
      const at = path ? `${path}.${key}` : key;
      if (FETCHING_KEYS.has(key)) {
        return {
          path: at,
          kind: 'fetch',
          message: `charts may not load or link to URLs; give the chart its data with "data": { "name": "<an earlier cell>" } or inline "values"`,
        };
      }
      if (RENDERER_KEYS.has(key)) {
        return {
          path: at,
          kind: 'renderer',
          message: `charts may not set the renderer's options; remove "${key}"`,
        };
      }
      const issue = walk(value, at, depth + 1);
      if (issue) return issue;
    }
    return null;
  };
  return walk(spec, '', 0);
}

/**
 * The first reason `spec` is unsafe to render, as `path: reason`, or null when it is safe.
 * @example chartSpecProblem({ layer: [{ data: { url: 'http://10.0.0.1/' } }] }) // 'layer[0].data.url: …'
 */
export function chartSpecProblem(spec: unknown): string | null {
  const issue = chartSpecIssue(spec);
  return issue ? `${issue.path}: ${issue.message}` : null;
}
