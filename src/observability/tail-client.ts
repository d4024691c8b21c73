/**
 * `edgeproc tail [WORKER]`: follows a running daemon's log through its admin
 * API (GET /logs) and prints each line readably, or as it came with --json.
 */
import { request } from 'undici';
import { EdgeprocError } from '../errors.js';

export interface TailOptions {
  adminUrl: string;
  adminToken: string | null;
  worker: string | null;
  json: boolean;
  out: (text: string) => void;
  /** Told once the daemon has accepted the follower. */
  connected: (text: string) => void;
}

/** Follows until the daemon ends the stream; throws EdgeprocError when it cannot connect or is refused. */
export async function tail(options: TailOptions): Promise<void> {
  let url: URL;
  try {
    url = new URL('/logs', options.adminUrl);
  } catch {
    throw new EdgeprocError('ERR_CONFIG', `--admin-url must be a URL like http://127.0.0.1:8788, got ${JSON.stringify(options.adminUrl)}`);
  }
  if (options.worker !== null) url.searchParams.set('worker', options.worker);
  let res;
  try {
    res = await request(url, {
      headers: options.adminToken ? { authorization: `Bearer ${options.adminToken}` } : {},
      headersTimeout: 10_000,
      // A quiet daemon may say nothing for a long time.
      bodyTimeout: 0,
    });
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new EdgeprocError('ERR_ADMIN_UNREACHABLE', `cannot connect to the admin API at ${options.adminUrl} (${reason}): is \`edgeproc serve\` running there? (--admin-url)`);
  }
  if (res.statusCode !== 200) {
    const text = await res.body.text();
    if (res.statusCode === 401) {
      throw new EdgeprocError('ERR_UNAUTHORIZED', `the admin API at ${options.adminUrl} refused the token: pass --admin-token or set EDGEPROC_ADMIN_TOKEN`);
    }
    let message = text.trim();
    try {
      message = (JSON.parse(text) as { error: { message: string } }).error.message;
    } catch {}
    throw new EdgeprocError('ERR_BAD_REQUEST', `the admin API at ${options.adminUrl} answered ${res.statusCode}: ${message}`);
  }
  options.connected(`edgeproc tail: following ${options.worker ? `worker ${options.worker}` : 'every worker'} on ${options.adminUrl} (Ctrl-C to stop)`);
  let rest = '';
  for await (const chunk of res.body.setEncoding('utf8')) {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop()!;
    for (const line of lines) if (line !== '') options.out(options.json ? `${line}\n` : `${readable(line)}\n`);
  }
}

const SHOWN = new Set(['time', 'level', 'msg', 'worker', 'requestId', 'source']);

/** `TIME LEVEL WORKER [REQUEST-ID] message key=value…`; a line that is not JSON as it is. */
export function readable(line: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const head = [String(record.time ?? ''), String(record.level ?? '').padEnd(5), String(record.worker ?? '-')];
  if (typeof record.requestId === 'string') head.push(record.requestId);
  const from = record.source === 'tenant' ? '' : record.source ? `[${String(record.source)}] ` : '';
  const fields = Object.entries(record)
    .filter(([key, value]) => !SHOWN.has(key) && value !== undefined)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
  return `${head.join(' ')} ${from}${String(record.msg ?? '')}${fields.length ? `  ${fields.join(' ')}` : ''}`;
}
