/**
 * The `edgeproc` command. Each EdgeprocError class maps to an exit code:
 * user errors 2, system errors 1; the message says what to do.
 */
import { Command, CommanderError } from 'commander';
import { Logger } from './log.js';
import { buildServeConfig, DEFAULT_ADMIN_PORT, DEFAULT_HOST, DEFAULT_PERSIST_TO, DEFAULT_PORT, type ServeFlags } from './config.js';
import { startDaemon } from './daemon.js';
import { EdgeprocError } from './errors.js';
import { DEFAULT_LIMITS } from './limits.js';
import type { Layer } from './pool/sandbox.js';

export const EXIT_CODES = { user: 2, system: 1, limit: 1 } as const;

const MIB = 1024 * 1024;

function program(): Command {
  const cli = new Command('edgeproc')
    .description('Cloudflare-Workers-style scripts, each tenant in its own pooled Node.js process')
    // A usage mistake is the caller's (exit 2, not commander's 1), said on one line like every other.
    // Set before the subcommands are added: they inherit both.
    .exitOverride()
    .configureOutput({
      outputError: (text, write) => write(`edgeproc: ${text.replace(/^error: /, '').trimEnd()} (run \`edgeproc --help\` for usage)\n`),
    });

  cli
    .command('serve')
    .description('serve one worker script, a Workers project (a folder with wrangler.toml/.json/.jsonc), or a directory of them (NAME.js, NAME.mjs, NAME/index.js, project folders)')
    .argument('<target>', 'a worker script, a Workers project, or a directory with one worker per file or folder')
    .option('-p, --port <port>', 'port of the front door', String(DEFAULT_PORT))
    .option('--host <host>', 'address of the front door', DEFAULT_HOST)
    .option('--admin-port <port>', 'port of the admin API', String(DEFAULT_ADMIN_PORT))
    .option('--admin-host <host>', 'address of the admin API (non-loopback needs --admin-token)', DEFAULT_HOST)
    .option('--admin-token <token>', 'bearer token the admin API requires (or EDGEPROC_ADMIN_TOKEN)')
    .option('--egress-allow <cidrs>', 'non-public address ranges tenant fetch may reach, e.g. 10.0.0.0/8,::1 (default: public addresses only)')
    .option('--warm-pool <n>', 'generic children kept booted and waiting for a script', String(DEFAULT_LIMITS.warmPoolSize))
    .option('--max-instances <n>', 'most instances (children) per worker', String(DEFAULT_LIMITS.maxInstancesPerWorker))
    .option(
      '--scale-out-concurrency <n>',
      'requests in flight on every instance of a worker before another is started',
      String(DEFAULT_LIMITS.scaleOutConcurrency),
    )
    .option('--cpu-ms <ms>', 'CPU time one request may use', String(DEFAULT_LIMITS.cpuMs))
    .option('--startup-cpu-ms <ms>', "CPU time a script's global scope may use while loading, with the runtime's one-time set-up of the APIs it uses first", String(DEFAULT_LIMITS.startupCpuMs))
    .option('--memory-mb <mb>', 'memory of one instance (V8 heap limit and resident anonymous memory)', String(DEFAULT_LIMITS.memoryMb))
    .option('--subrequests <n>', 'fetch() calls one request may make', String(DEFAULT_LIMITS.subrequests))
    .option('--kv-operations <n>', 'KV operations one request may make', String(DEFAULT_LIMITS.kvOperations))
    .option('--cache-mb <mb>', 'Cache API entries kept per worker (least recently used go first)', String(DEFAULT_LIMITS.cacheBytes / MIB))
    .option('--wall-ms <ms>', 'how long a request may wait for its response (then 504)', String(DEFAULT_LIMITS.wallMs))
    .option('--wait-until-ms <ms>', 'how long waitUntil work may run after its response', String(DEFAULT_LIMITS.waitUntilMs))
    .option('--recycle-after <n>', 'requests an instance serves before it is replaced gracefully (0: never)', String(DEFAULT_LIMITS.recycleAfterRequests))
    .option('--recycle-rss-mb <mb>', 'resident anonymous memory at which a busy instance is replaced gracefully (0: never)', String(DEFAULT_LIMITS.recycleRssMb))
    .option('--request-body-mb <mb>', 'largest request body the front door accepts (then 413)', String(DEFAULT_LIMITS.requestBodyBytes / MIB))
    .option('--max-inflight <n>', 'requests in flight per worker before 503 with Retry-After', String(DEFAULT_LIMITS.maxInflightPerWorker))
    .option('--max-websockets <n>', 'WebSockets open per worker before an upgrade gets 503 with Retry-After', String(DEFAULT_LIMITS.maxWebSocketsPerWorker))
    .option('--idle-timeout <ms>', 'stop an instance idle this long', String(DEFAULT_LIMITS.idleTimeoutMs))
    .option('--drain-timeout <ms>', 'longest wait for in-flight work when draining', String(DEFAULT_LIMITS.drainTimeoutMs))
    .option('--env <name>', "Workers projects: use each wrangler config's [env.NAME] (and .dev.vars.NAME if present)")
    .option('--watch', 'Workers projects: rebuild and redeploy a project when one of its files changes')
    .option('--persist-to <dir>', 'where the embedded KV store keeps its data (SQLite)', DEFAULT_PERSIST_TO)
    .option('--kv-url <url>', 'keep KV in Redis (redis://host:port/db) instead, shared by every daemon given the same URL')
    .option('--log-level <level>', 'write log lines at this level and above: debug, info, warn, error', 'debug')
    .option('--test-scheduled', "GET /__scheduled?cron=PATTERN runs the worker's scheduled handler once (as wrangler dev --test-scheduled)")
    .option('--no-code-cache', "compile every instance's script from scratch, not from the V8 code cache its version's first instance made")
    .option('--cf <file>', "a JSON object of request.cf fields (country, colo, ...) every request starts from, for local testing; default: only what edgeproc knows")
    .action(async (target: string, flags: ServeFlags) => {
      const config = buildServeConfig(target, flags);
      const daemon = await startDaemon(config, new Logger(undefined, config.logLevel));
      const names = daemon.registry.list().map((w) => w.name);
      const where =
        daemon.target.kind !== 'directory'
          ? `  ${names[0]} → ${daemon.url}/`
          : names.map((n) => `  ${n} → http://${n}.localhost:${daemon.port}/`).join('\n');
      process.stderr.write(
        `edgeproc serving ${names.length} worker${names.length === 1 ? '' : 's'} on ${daemon.url} (admin API ${daemon.adminUrl})\n${where}\n`,
      );
      process.stderr.write(`${describeSandbox(daemon.sandbox)}\n`);
      if (daemon.kvStore) process.stderr.write(`KV: ${daemon.kvStore.backend === 'sqlite' ? 'SQLite' : 'Redis'} at ${daemon.kvStore.location}\n`);
      let signalled = false;
      const shutdown = (signal: string) => {
        if (signalled) {
          process.stderr.write(`edgeproc: ${signal} again, exiting without waiting\n`);
          process.exit(1);
        }
        signalled = true;
        // close() stops listening before its first await, so once this line is out no new connection gets in.
        const closed = daemon.close();
        process.stderr.write(`edgeproc: ${signal} received, draining (in-flight requests and waitUntil work)\n`);
        closed.then(
          () => process.exit(0),
          (error: Error) => {
            process.stderr.write(`edgeproc: drain failed: ${error.message}\n`);
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      process.on('SIGINT', () => shutdown('SIGINT'));
    });

  cli
    .command('tail')
    .description("follow a running daemon's log live through its admin API, every worker or one")
    .argument('[worker]', 'only the lines about this worker')
    .option('--admin-url <url>', 'where the admin API listens', `http://${DEFAULT_HOST}:${DEFAULT_ADMIN_PORT}`)
    .option('--admin-token <token>', 'bearer token the admin API requires (or EDGEPROC_ADMIN_TOKEN)')
    .option('--json', 'print the JSON lines as they come')
    .action(async (worker: string | undefined, flags: { adminUrl: string; adminToken?: string; json?: boolean }) => {
      const { tail } = await import('./observability/tail-client.js');
      process.on('SIGINT', () => process.exit(0));
      await tail({
        adminUrl: flags.adminUrl,
        adminToken: flags.adminToken ?? process.env.EDGEPROC_ADMIN_TOKEN ?? null,
        worker: worker ?? null,
        json: flags.json === true,
        out: (text) => process.stdout.write(text),
        connected: (text) => process.stderr.write(`${text}\n`),
      });
      process.stderr.write('edgeproc tail: the daemon closed the log stream (it is shutting down?)\n');
      process.exitCode = 1;
    });

  cli
    .command('bench')
    .description("edgeproc's cold starts: warm-pool hit, warm-pool miss, and a burst of new tenants at once")
    .option('--quick', 'fewer samples (about 20 s)')
    .option('--json <file>', 'also write the figures as JSON')
    .action(async (flags: { quick?: boolean; json?: string }) => {
      const { coldBench, COLD_CASES, COLD_FULL, COLD_QUICK } = await import('./lab/cold-bench.js');
      const { table } = await import('./lab/table.js');
      const { describeLabMachine, labMachine } = await import('./lab/machine.js');
      const machine = labMachine();
      const plan = flags.quick ? COLD_QUICK : COLD_FULL;
      const report = await coldBench(plan, (line) => process.stderr.write(`${line}\n`));
      process.stdout.write(
        `method: a new tenant deployed through the admin API, timed at the client to its first complete response;\n` +
          `  hit: warm pool refilled before each of ${plan.hitSamples} samples; miss: --warm-pool 0, ${plan.missSamples} samples;\n` +
          `  burst: ${plan.burst} tenants deployed at once, ${plan.burstRounds} round(s), each timed from the start of its burst.\n` +
          `${describeLabMachine(machine)}\n\n` +
          table(
            ['case', 'samples', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'failed'],
            COLD_CASES.map((k) => [k, report[k].samples, report[k].p50, report[k].p90, report[k].p99, report[k].max, report.failed[k]]),
          ) +
          '\n' +
          (report.failures.length > 0 ? `cold starts answered with an error (not in the figures above):\n${report.failures.map((f) => `  ${f}\n`).join('')}` : ''),
      );
      if (flags.json) await writeJson(flags.json, { machine, ...report });
      const unmeasured = COLD_CASES.filter((k) => report[k].samples === 0);
      if (unmeasured.length > 0) {
        process.stderr.write(`edgeproc bench: every cold start of ${unmeasured.join(', ')} was answered with an error (see above): nothing measured there.\n`);
        process.exitCode = 1;
      }
    });

  cli
    .command('compare')
    .description('run the same workloads through each isolation model and compare cold start, latency, throughput, memory and containment')
    .option('--models <list>', `comma-separated models (default: all): process-pool, process-fresh, thread, vm, isolate, workerd`)
    .option('--quick', 'small samples, about a minute on 2 cores')
    .option('--json <file>', 'write every figure as JSON')
    .option('--html <file>', 'write a self-contained HTML page with charts')
    .action(async (flags: { models?: string; quick?: boolean; json?: string; html?: string }) => {
      const { compare, FULL_PLAN, QUICK_PLAN } = await import('./lab/compare.js');
      const { pickModels } = await import('./lab/models/index.js');
      const { htmlReport, textReport } = await import('./lab/report.js');
      const models = pickModels(flags.models?.split(',').map((m) => m.trim()).filter(Boolean));
      const report = await compare(models, flags.quick ? QUICK_PLAN : FULL_PLAN, (line) => process.stderr.write(`${line}\n`));
      process.stdout.write(`${textReport(report)}\n`);
      if (flags.json) await writeJson(flags.json, report);
      if (flags.html) {
        const { writeFile } = await import('node:fs/promises');
        await writeFile(flags.html, htmlReport(report));
        process.stderr.write(`wrote ${flags.html}\n`);
      }
    });
  return cli;
}

async function writeJson(path: string, data: unknown): Promise<void> {
  const { writeFile } = await import('node:fs/promises');
  await writeFile(path, JSON.stringify(data, null, 2) + '\n');
  process.stderr.write(`wrote ${path}\n`);
}

export async function main(argv: string[]): Promise<void> {
  try {
    await program().parseAsync(argv);
  } catch (error) {
    if (error instanceof EdgeprocError) {
      process.stderr.write(`edgeproc: ${error.message}\n`);
      process.exitCode = EXIT_CODES[error.errorClass];
      return;
    }
    if (error instanceof CommanderError) {
      // Help and version are "errors" under exitOverride too, with their own exit code (0).
      const shown = error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help';
      process.exitCode = shown ? error.exitCode : EXIT_CODES.user;
      return;
    }
    process.stderr.write(`edgeproc: unexpected failure: ${(error as Error).stack ?? error}\n`);
    process.exitCode = 1;
  }
}

/** The startup report of the layers around every child: one line each, off ones first so they are seen. */
function describeSandbox(layers: readonly Layer[]): string {
  const sorted = [...layers].sort((a, b) => Number(a.active) - Number(b.active));
  const lines = sorted.map((layer) => `  ${layer.active ? 'on ' : 'OFF'} ${layer.name.padEnd(11)} ${layer.detail}`);
  const on = layers.filter((layer) => layer.active).length;
  return `child isolation: ${on} of ${layers.length} layers on\n${lines.join('\n')}`;
}
