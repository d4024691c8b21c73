/**
 * A cron trigger that leaves a trace in Workers KV: each run of scheduled()
 * writes a record under `run:<ISO time>` that KV deletes after a day
 * (expirationTtl), and a `latest` summary with a rolling count; fetch reports
 * them, so the Worker can answer whether its own cron still fires. The same
 * file runs on Cloudflare Workers.
 *
 *   GET /        → {"latest": {...}, "runs": [...newest first]}
 *   GET /health  → 200 while the last run is recent, 503 once one is overdue (for an uptime monitor)
 */

type Env = { HEARTBEAT: KVNamespace };

/** One run, as recorded. */
interface Run {
  cron: string;
  /** When the run was due, from controller.scheduledTime. */
  scheduledTime: string;
  /** How long after it was due the handler started: a measure of the trigger's lag. */
  lagMs: number;
  /** Seconds since the previous run was due; null for the first. */
  sinceLastSeconds: number | null;
}

interface Latest {
  runs: number;
  firstRun: string;
  lastRun: Run;
}

const RUN_PREFIX = 'run:';
const LATEST = 'latest';
/** The log holds a day of runs: 288 at one run per five minutes, one KV list page. */
const RUN_TTL_SECONDS = 24 * 60 * 60;
/** Two missed runs of a five-minute cron, and a minute's grace, before /health says so. */
const OVERDUE_MS = 11 * 60 * 1000;

export default {
  async scheduled(controller, env) {
    const due = new Date(controller.scheduledTime);
    const previous = await env.HEARTBEAT.get<Latest>(LATEST, 'json');
    const run: Run = {
      cron: controller.cron,
      scheduledTime: due.toISOString(),
      lagMs: Date.now() - controller.scheduledTime,
      sinceLastSeconds: previous ? Math.round((controller.scheduledTime - Date.parse(previous.lastRun.scheduledTime)) / 1000) : null,
    };
    const latest: Latest = { runs: (previous?.runs ?? 0) + 1, firstRun: previous?.firstRun ?? run.scheduledTime, lastRun: run };
    // ISO times sort as text, so a KV list of `run:` returns the log in order. The run rides in
    // the metadata too, so that list is the whole report, with no get per run. One cron is
    // configured; a second one due at the same minute would need its own key (add the cron).
    await Promise.all([
      env.HEARTBEAT.put(RUN_PREFIX + run.scheduledTime, JSON.stringify(run), { metadata: run, expirationTtl: RUN_TTL_SECONDS }),
      env.HEARTBEAT.put(LATEST, JSON.stringify(latest)),
    ]);
  },

  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    if (request.method !== 'GET') return Response.json({ error: 'only GET' }, { status: 405, headers: { allow: 'GET' } });

    if (pathname === '/') {
      const [latest, log] = await Promise.all([
        env.HEARTBEAT.get<Latest>(LATEST, 'json'),
        env.HEARTBEAT.list<Run>({ prefix: RUN_PREFIX, limit: 1000 }),
      ]);
      const runs = log.keys.flatMap((key) => (key.metadata ? [key.metadata] : [])).reverse();
      return Response.json({ latest, runs });
    }

    if (pathname === '/health') {
      const latest = await env.HEARTBEAT.get<Latest>(LATEST, 'json');
      if (!latest) return Response.json({ ok: false, error: 'no run recorded yet' }, { status: 503 });
      const ageMs = Date.now() - Date.parse(latest.lastRun.scheduledTime);
      const ok = ageMs <= OVERDUE_MS;
      return Response.json({ ok, lastRun: latest.lastRun.scheduledTime, ageSeconds: Math.round(ageMs / 1000) }, { status: ok ? 200 : 503 });
    }

    return Response.json({ error: 'not found' }, { status: 404 });
  },
} satisfies ExportedHandler<Env>;
