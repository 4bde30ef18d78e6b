/**
 * Which names a piece of JavaScript reads from outside itself. Used to check that cells and
 * interpolations only refer to inputs and earlier cells, and to pass each cell exactly the names it uses.
 */
import type { Node } from 'acorn';
import * as walk from 'acorn-walk';

type AnyNode = Node & Record<string, any>;

/** Identifiers that `node` reads but does not declare, with the offset of their first use. */
export function freeIdentifiers(node: Node): Map<string, number> {
  const declared = new Set<string>();
  const used = new Map<string, number>();
  walk.fullAncestor(node, (n, _state, ancestors) => {
    const current = n as AnyNode;
    switch (current.type) {
      case 'VariableDeclarator':
        patternNames(current['id'], declared);
        return;
      case 'FunctionDeclaration':
      case 'FunctionExpression':
      case 'ArrowFunctionExpression':
        if (current['id']) declared.add(current['id'].name);
        for (const param of current['params']) patternNames(param, declared);
        return;
      case 'ClassDeclaration':
      case 'ClassExpression':
        if (current['id']) declared.add(current['id'].name);
        return;
      case 'CatchClause':
        if (current['param']) patternNames(current['param'], declared);
        return;
      case 'ImportSpecifier':
      case 'ImportDefaultSpecifier':
      case 'ImportNamespaceSpecifier':
        declared.add(current['local'].name);
        return;
      case 'Identifier': {
        const parent = ancestors[ancestors.length - 2] as AnyNode | undefined;
        if (parent && !isReference(current, parent)) return;
        if (!used.has(current['name'])) used.set(current['name'], current.start);
        return;
      }
    }
  });
  for (const name of declared) used.delete(name);
  return used;
}

function isReference(node: AnyNode, parent: AnyNode): boolean {
  switch (parent.type) {
    case 'MemberExpression':
      return parent['object'] === node || parent['computed'];
    case 'Property':
    case 'MethodDefinition':
    case 'PropertyDefinition':
      return parent['value'] === node || parent['computed'] || parent['shorthand'];
    case 'LabeledStatement':
    case 'BreakStatement':
    case 'ContinueStatement':
      return false;
    case 'ImportSpecifier':
    case 'ImportDefaultSpecifier':
    case 'ImportNamespaceSpecifier':
    case 'ExportSpecifier':
      return parent['local'] === node && parent.type === 'ExportSpecifier';
    case 'MetaProperty':
      return false;
    default:
      return true;
  }
}

function patternNames(pattern: AnyNode | null, into: Set<string>): void {
  if (!pattern) return;
  switch (pattern.type) {
    case 'Identifier':
      into.add(pattern['name']);
      return;
    case 'ObjectPattern':
      for (const p of pattern['properties']) patternNames(p.type === 'RestElement' ? p : p.value, into);
      return;
    case 'ArrayPattern':
      for (const element of pattern['elements']) patternNames(element, into);
      return;
    case 'RestElement':
      patternNames(pattern['argument'], into);
      return;
    case 'AssignmentPattern':
      patternNames(pattern['left'], into);
      return;
  }
}

/** Names that exist in every cell without being declared: JavaScript and Node globals. */
export const GLOBAL_NAMES: ReadonlySet<string> = new Set([
  ...Object.getOwnPropertyNames(globalThis),
  'undefined',
  'NaN',
  'Infinity',
  'arguments',
  'this',
]);
