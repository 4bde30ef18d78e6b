/**
 * Rewrites the policy table in docs/permissions.md from domain/access-policy.ts (between the
 * `<!-- policy:start -->` and `<!-- policy:end -->` markers). test/access-policy.test.ts fails when
 * the two differ.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { policyMarkdown } from '../src/domain/access-policy.ts';

const FILE = new URL('../docs/permissions.md', import.meta.url);
const text = readFileSync(FILE, 'utf8');
const updated = text.replace(
  /<!-- policy:start -->[\s\S]*<!-- policy:end -->/,
  `<!-- policy:start -->\n${policyMarkdown()}\n<!-- policy:end -->`,
);
writeFileSync(FILE, updated);
console.log(updated === text ? 'docs/permissions.md is up to date' : 'docs/permissions.md rewritten');
