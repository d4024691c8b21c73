/**
 * Run as its own short-lived process by check.ts: reads scripts as JSON on
 * stdin and writes, as JSON on stdout, the SyntaxError of each one that V8
 * cannot compile. Compiling only: nothing is linked or evaluated.
 */
import vm from 'node:vm';

export interface ParseRequest {
  filename: string;
  source: string;
  /** A `.mjs` file: only module syntax will do. */
  moduleOnly: boolean;
}

export interface ParseFailure {
  index: number;
  message: string;
  /** Known for a classic script (from V8's decorated stack); null for a module. */
  line: number | null;
  column: number | null;
}

/** The classic-script errors that mean "this is a module" (the runner then loads it as one). */
const MODULE_SYNTAX = /Cannot use import statement outside a module|Unexpected token 'export'|import\.meta|await is only valid/;

function compileError(compile: () => unknown): Error | null {
  try {
    compile();
    return null;
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

function check({ filename, source, moduleOnly }: ParseRequest): Omit<ParseFailure, 'index'> | null {
  const asModule = () => compileError(() => new vm.SourceTextModule(source, { identifier: filename }));
  if (moduleOnly) {
    const error = asModule();
    return error && { message: `${error.name}: ${error.message}`, line: null, column: null };
  }
  const classic = compileError(() => new vm.Script(source, { filename }));
  if (!classic) return null;
  const module = asModule();
  if (!module) return null;
  if (MODULE_SYNTAX.test(classic.message)) return { message: `${module.name}: ${module.message}`, line: null, column: null };
  // V8 decorates a script's SyntaxError stack as "file:LINE\n<source line>\n<spaces>^^^".
  const lines = (classic.stack ?? '').split('\n');
  const at = /:(\d+)$/.exec(lines[0] ?? '');
  const caret = (lines[2] ?? '').indexOf('^');
  return {
    message: `${classic.name}: ${classic.message}`,
    line: at && lines[0]!.startsWith(filename) ? Number(at[1]) : null,
    column: at && caret >= 0 ? caret + 1 : null,
  };
}

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => (input += chunk));
process.stdin.on('end', () => {
  const failures: ParseFailure[] = [];
  (JSON.parse(input) as ParseRequest[]).forEach((request, index) => {
    const failure = check(request);
    if (failure) failures.push({ index, ...failure });
  });
  process.stdout.write(JSON.stringify(failures));
});
