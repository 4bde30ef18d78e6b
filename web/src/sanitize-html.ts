/**
 * HTML from cells is data, not markup. Prose arrives as HTML that the run's child process rendered from
 * the notebook's Markdown (with `{{ }}` values escaped), but a hostile child can send any HTML at all, so
 * the page keeps only what Markdown produces: headings, paragraphs, lists, emphasis, code, quotes, tables,
 * links with safe schemes and inline `data:` images. No script, style, iframe, object, embed, form,
 * svg/math, event handler, `style` or `id` attribute survives. DOMPurify does the parsing and walking;
 * this module is its allowlist and three small rules (links, images, classes).
 *
 * The page's Content-Security-Policy (`script-src 'self'`, no `unsafe-eval`) is the second wall: even
 * markup that slipped past this allowlist could not run a script.
 */
import type { Config, DOMPurify } from 'dompurify';

/** Elements Markdown renders (markdown-it, CommonMark, tables, strikethrough), and nothing else. */
export const PROSE_TAGS: readonly string[] = [
  'h1',
  'h2',
  'h3',
  'h4',
  'h5',
  'h6',
  'p',
  'br',
  'hr',
  'blockquote',
  'ul',
  'ol',
  'li',
  'dl',
  'dt',
  'dd',
  'em',
  'strong',
  'b',
  'i',
  's',
  'del',
  'ins',
  'mark',
  'sub',
  'sup',
  'small',
  'code',
  'pre',
  'kbd',
  'samp',
  'span',
  'table',
  'caption',
  'thead',
  'tbody',
  'tfoot',
  'tr',
  'th',
  'td',
  'a',
  'img',
];

/** Attributes kept on those elements. No `id`/`name` (they clobber DOM globals), no `style`, no `on*`. */
export const PROSE_ATTRIBUTES: readonly string[] = [
  'href',
  'title',
  'alt',
  'src',
  'start',
  'colspan',
  'rowspan',
  'class',
];

/**
 * URLs a link may point to: `http:`, `https:`, `mailto:`, or a relative reference (no scheme). Anything
 * else (`javascript:`, `data:`, `vbscript:`, `file:`…) is dropped. DOMPurify strips whitespace and
 * decodes entities before testing, so `jav&#x09;ascript:` does not slip through.
 */
export const SAFE_LINK = /^(?:(?:https?|mailto):|[^a-z]|[a-z+.-]+(?:[^a-z+.\-:]|$))/i;

/**
 * The only images kept: raster `data:` URLs. An image from anywhere else is a request the viewer's
 * browser (and the screenshot browser) would make on the author's behalf, to any address, so its `src`
 * is removed and only its `alt` text stays.
 */
export const SAFE_IMAGE = /^data:image\/(?:png|gif|jpeg|webp);base64,[a-z0-9+/=\s]*$/i;

/** Class names kept: code languages from fenced blocks and table alignment. Others could pose as the app's own. */
const SAFE_CLASS = /^(?:language-[\w-]{1,40}|align-(?:left|center|right))$/;

/** markdown-it writes table alignment as `style="text-align:right"`; it becomes an `align-*` class. */
const ALIGN_STYLE = /^\s*text-align:\s*(left|center|right)\s*;?\s*$/i;

/** The DOMPurify options for cell HTML. */
export const PROSE_CONFIG: Config = {
  ALLOWED_TAGS: [...PROSE_TAGS],
  ALLOWED_ATTR: [...PROSE_ATTRIBUTES],
  ALLOWED_URI_REGEXP: SAFE_LINK,
  ALLOW_DATA_ATTR: false,
  ALLOW_ARIA_ATTR: false,
  ALLOW_UNKNOWN_PROTOCOLS: false,
  ALLOW_SELF_CLOSE_IN_ATTR: false,
  SAFE_FOR_TEMPLATES: false,
  WHOLE_DOCUMENT: false,
  KEEP_CONTENT: true,
  // Named belt and braces: these are outside the allowlist anyway, and their content is dropped too.
  FORBID_TAGS: [
    'script',
    'style',
    'iframe',
    'object',
    'embed',
    'form',
    'svg',
    'math',
    'template',
    'link',
    'meta',
    'base',
  ],
  FORBID_ATTR: ['style', 'id', 'name', 'srcset', 'action', 'formaction', 'target'],
  FORBID_CONTENTS: [
    'script',
    'style',
    'iframe',
    'object',
    'embed',
    'svg',
    'math',
    'template',
    'noscript',
    'title',
    'textarea',
    'select',
  ],
};

/** What the page uses: cell HTML to a safe DOM fragment (for the page) or a safe string (for tests). */
export interface ProseSanitizer {
  /** Sanitized markup, as a fragment of the current document, ready to append. */
  fragment(html: string): ReturnType<typeof fragmentOf>;
  /** Sanitized markup as a string. */
  html(html: string): string;
}

/** A DocumentFragment, typed through DOMPurify's own declaration so this module needs no DOM typings. */
function fragmentOf(purify: DOMPurify, html: string) {
  return purify.sanitize(html, { ...PROSE_CONFIG, RETURN_DOM_FRAGMENT: true });
}

/**
 * Installs the link, image and class rules on `purify` (an instance made for one window:
 * `DOMPurify(window)`) and returns the sanitizer. Call it once per instance: the rules are hooks.
 */
export function createProseSanitizer(purify: DOMPurify): ProseSanitizer {
  purify.addHook('beforeSanitizeAttributes', (node) => {
    const tag = node.nodeName.toLowerCase();
    if ((tag === 'td' || tag === 'th') && node.hasAttribute('style')) {
      const align = ALIGN_STYLE.exec(node.getAttribute('style') ?? '');
      if (align) node.setAttribute('class', `align-${align[1]!.toLowerCase()}`);
    }
  });
  purify.addHook('afterSanitizeAttributes', (node) => {
    const tag = node.nodeName.toLowerCase();
    if (node.hasAttribute('class')) {
      const kept = (node.getAttribute('class') ?? '').split(/\s+/).filter((c: string) => SAFE_CLASS.test(c));
      if (kept.length > 0) node.setAttribute('class', kept.join(' '));
      else node.removeAttribute('class');
    }
    if (tag === 'a') {
      if (node.hasAttribute('href')) {
        // Links leave the app in a new tab that cannot reach back (window.opener) or learn the run's URL.
        node.setAttribute('rel', 'noopener noreferrer');
        node.setAttribute('target', '_blank');
      }
    }
    if (tag === 'img') {
      const src = node.getAttribute('src');
      if (src !== null && !SAFE_IMAGE.test(src)) node.removeAttribute('src');
    }
  });
  return {
    fragment: (html) => fragmentOf(purify, html),
    html: (html) => String(purify.sanitize(html, { ...PROSE_CONFIG })),
  };
}
