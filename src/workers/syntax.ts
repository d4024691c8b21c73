/**
 * Finds where a script fails to parse, for load errors V8 reports without a
 * position (module SyntaxErrors). Parsing only: nothing is evaluated.
 */
import { lazyPackage } from '../lazy-package.js';

const esbuild = lazyPackage<typeof import('esbuild')>('esbuild');

export function findSyntaxError(source: string, filename: string): { line: number; column: number } | null {
  try {
    esbuild().transformSync(source, { loader: 'js', format: 'esm', sourcefile: filename, logLevel: 'silent' });
    return null;
  } catch (error) {
    const location = (error as { errors?: Array<{ location?: { line: number; column: number } | null }> }).errors?.[0]
      ?.location;
    // esbuild's columns count from 0; editors and V8 count from 1.
    return location ? { line: location.line, column: location.column + 1 } : null;
  }
}
