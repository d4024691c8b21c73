/**
 * The comparison as people read it: tables for the terminal, and a
 * self-contained HTML page (inline SVG, no scripts, no network) with the
 * cold-start distribution, throughput, and memory per tenant against tenant
 * count. Both print the method and the machine next to the figures.
 */
import type { CompareReport, ModelReport } from './compare.js';
import { describeLabMachine } from './machine.js';
import { fmt, table } from './table.js';

const NA = '—';

export function textReport(report: CompareReport): string {
  const available = report.models.filter((m) => m.available);
  const lines: string[] = [];
  lines.push('method:');
  for (const line of report.method.text) lines.push(`  ${line}`);
  lines.push(describeLabMachine(report.machine));
  lines.push('');
  lines.push(
    table(
      ['model', 'cold p50 ms', 'cold p99 ms', 'warm req/s', 'warm p50 ms', 'warm p99 ms', 'MiB/tenant', 'runaway stopped', 'stop ms', 'neighbour errors', 'neighbour p99 ms (alone)', 'crash: neighbour errors', 'others serve after'],
      available.map((m) => [
        m.name,
        num(m.coldStartMs?.p50),
        num(m.coldStartMs?.p99),
        num(m.warm?.requestsPerSec),
        num(m.warm?.latencyMs.p50),
        num(m.warm?.latencyMs.p99),
        memoryCell(m),
        m.runaway ? (m.runaway.stopped ? `yes (${m.runaway.status})` : 'no') : NA,
        num(m.runaway?.stopMs ?? undefined),
        num(m.runaway?.neighbourErrors),
        m.runaway ? `${fmt(m.runaway.neighbourP99Ms)} (${fmt(m.runaway.neighbourP99AloneMs)})` : NA,
        m.crash ? `${m.crash.neighbourErrors}/${m.crash.neighbourRequests}${m.crash.killedByLab ? ' (lab killed it)' : ''}` : NA,
        m.crash ? (m.crash.othersServeAfter ? 'yes' : 'no') : NA,
      ]),
    ),
  );
  lines.push('');
  lines.push(table(['model', 'memory: MiB per tenant at N tenants live'], available.map((m) => [m.name, m.memory?.perTenantMiB.map((p) => `${p.tenants}: ${fmt(p.perTenantMiB)}`).join(', ') ?? NA])));
  lines.push('');
  lines.push(
    table(
      ['model / process-pool', 'cold p50', 'warm req/s', 'MiB/tenant'],
      report.ratios.map((r) => [r.name, ratioCell(r.coldStartP50), ratioCell(r.warmRequestsPerSec), ratioCell(r.memoryPerTenant)]),
    ),
  );
  lines.push('');
  lines.push(table(['model', 'boundary', 'notes'], report.models.map((m) => [m.name, m.boundary, m.available ? m.notes : `UNAVAILABLE: ${m.unavailableReason}`])));
  const failures = report.models.flatMap((m) => m.errors.map((e) => `${m.name}: ${e}`));
  if (failures.length) {
    lines.push('');
    lines.push('experiments that failed:');
    for (const f of failures) lines.push(`  ${f}`);
  }
  lines.push('');
  lines.push(...verdicts(report));
  return lines.join('\n');
}

/** The issue's targets, checked on this run's figures. */
export function verdicts(report: CompareReport): string[] {
  const pool = report.models.find((m) => m.name === 'process-pool');
  const isolate = report.models.find((m) => m.name === 'isolate');
  const fresh = report.models.find((m) => m.name === 'process-fresh');
  const out: string[] = [];
  const p = pool?.coldStartMs?.p50;
  if (p !== undefined && isolate?.coldStartMs) {
    const r = p / isolate.coldStartMs.p50;
    out.push(`process-pool cold p50 / isolate cold p50 = ${fmt(r)} (target ≤ 2): ${r <= 2 ? 'PASS' : 'FAIL'}`);
  } else {
    out.push(`process-pool vs isolate cold start: not measured (${isolate?.available === false ? `isolate unavailable: ${isolate.unavailableReason}` : 'missing'})`);
  }
  if (p !== undefined && fresh?.coldStartMs) {
    const r = fresh.coldStartMs.p50 / p;
    out.push(`process-fresh cold p50 / process-pool cold p50 = ${fmt(r)} (target ≥ 10): ${r >= 10 ? 'PASS' : 'FAIL'}`);
  }
  if (pool?.runaway) {
    const ok = pool.runaway.stopped && pool.runaway.neighbourErrors === 0;
    out.push(`process-pool stops a runaway with zero neighbour errors: ${ok ? 'PASS' : 'FAIL'} (stopped ${pool.runaway.stopped}, ${pool.runaway.neighbourErrors} errors)`);
  }
  return out;
}

export function htmlReport(report: CompareReport): string {
  const available = report.models.filter((m) => m.available);
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const rows = textReport(report);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgeproc compare — ${esc(report.machine.date)}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 2em; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 12px; }
svg text { font: 11px system-ui, sans-serif; fill: #222; }
</style></head><body>
<h1>edgeproc compare: isolation models side by side</h1>
<p>${esc(describeLabMachine(report.machine))}. Run took ${report.durationSec} s.</p>
<h2>Cold start (new tenant → first response), ms</h2>
${stripChart(available.map((m) => ({ label: m.name, values: m.coldStartMs ? [m.coldStartMs.min, m.coldStartMs.p50, m.coldStartMs.p90, m.coldStartMs.p99, m.coldStartMs.max] : [] })))}
<p>Each row: min, p50 (bold), p90, p99, max, on a log scale.</p>
<h2>Warm throughput, requests per second (${report.method.plan.warmConnections} connections)</h2>
${barChart(available.map((m) => ({ label: m.name, value: m.warm?.requestsPerSec ?? 0 })))}
<h2>Memory per tenant (PSS growth), MiB, against tenants live</h2>
${lineChart(available.map((m) => ({ label: m.name, points: (m.memory?.perTenantMiB ?? []).map((p) => [p.tenants, p.perTenantMiB] as [number, number]) })))}
<h2>All figures</h2>
<pre>${esc(rows)}</pre>
</body></html>
`;
}

const COLORS = ['#1b6ca8', '#d1495b', '#edae49', '#00798c', '#30638e', '#6a4c93'];

function stripChart(rows: Array<{ label: string; values: number[] }>): string {
  const all = rows.flatMap((r) => r.values).filter((v) => v > 0);
  if (all.length === 0) return '<p>no data</p>';
  const lo = Math.log10(Math.min(...all)) - 0.1;
  const hi = Math.log10(Math.max(...all)) + 0.1;
  const width = 900;
  const x = (v: number) => 120 + ((Math.log10(v) - lo) / (hi - lo)) * (width - 140);
  const height = rows.length * 28 + 30;
  const ticks = [];
  for (let e = Math.ceil(lo); e <= Math.floor(hi); e++) ticks.push(10 ** e);
  return `<svg width="${width}" height="${height}" role="img">
${ticks.map((t) => `<line x1="${x(t)}" x2="${x(t)}" y1="0" y2="${height - 20}" stroke="#ddd"/><text x="${x(t)}" y="${height - 5}" text-anchor="middle">${t}</text>`).join('\n')}
${rows
  .map((r, i) => {
    const y = i * 28 + 18;
    if (r.values.length < 5) return `<text x="0" y="${y + 4}">${r.label}</text><text x="120" y="${y + 4}">no data</text>`;
    const [min, p50, p90, p99, max] = r.values as [number, number, number, number, number];
    const c = COLORS[i % COLORS.length];
    return `<text x="0" y="${y + 4}">${r.label}</text>
<line x1="${x(min)}" x2="${x(max)}" y1="${y}" y2="${y}" stroke="${c}"/>
<rect x="${x(p50)}" y="${y - 6}" width="${Math.max(1, x(p90) - x(p50))}" height="12" fill="${c}" opacity="0.4"/>
<line x1="${x(p50)}" x2="${x(p50)}" y1="${y - 8}" y2="${y + 8}" stroke="${c}" stroke-width="3"/>
<line x1="${x(p99)}" x2="${x(p99)}" y1="${y - 5}" y2="${y + 5}" stroke="${c}"/>
<text x="${x(max) + 4}" y="${y + 4}">p50 ${fmt(p50)}, p99 ${fmt(p99)}</text>`;
  })
  .join('\n')}
</svg>`;
}

function barChart(rows: Array<{ label: string; value: number }>): string {
  const max = Math.max(1, ...rows.map((r) => r.value));
  const width = 900;
  return `<svg width="${width}" height="${rows.length * 26 + 10}" role="img">
${rows
  .map((r, i) => {
    const w = (r.value / max) * (width - 220);
    return `<text x="0" y="${i * 26 + 17}">${r.label}</text><rect x="120" y="${i * 26 + 5}" width="${w}" height="16" fill="${COLORS[i % COLORS.length]}"/><text x="${125 + w}" y="${i * 26 + 17}">${Math.round(r.value)}</text>`;
  })
  .join('\n')}
</svg>`;
}

function lineChart(series: Array<{ label: string; points: Array<[number, number]> }>): string {
  const points = series.flatMap((s) => s.points);
  if (points.length === 0) return '<p>no data</p>';
  const maxX = Math.max(...points.map((p) => p[0]));
  const maxY = Math.max(1, ...points.map((p) => p[1]));
  const [w, h] = [700, 320];
  const x = (v: number) => 50 + (v / maxX) * (w - 70);
  const y = (v: number) => h - 30 - (v / maxY) * (h - 50);
  return `<svg width="${w + 200}" height="${h}" role="img">
<line x1="50" x2="${w - 20}" y1="${h - 30}" y2="${h - 30}" stroke="#888"/><line x1="50" x2="50" y1="10" y2="${h - 30}" stroke="#888"/>
<text x="${w - 20}" y="${h - 10}" text-anchor="end">tenants live (max ${maxX})</text><text x="55" y="20">MiB/tenant (max ${fmt(maxY)})</text>
${series
  .map((s, i) => {
    const c = COLORS[i % COLORS.length];
    const path = s.points.map((p, k) => `${k ? 'L' : 'M'}${x(p[0])},${y(p[1])}`).join(' ');
    const last = s.points.at(-1);
    return `<path d="${path}" fill="none" stroke="${c}" stroke-width="2"/>${s.points.map((p) => `<circle cx="${x(p[0])}" cy="${y(p[1])}" r="3" fill="${c}"/>`).join('')}<text x="${w - 10}" y="${20 + i * 16}" fill="${c}">${s.label}${last ? `: ${fmt(last[1])}` : ''}</text>`;
  })
  .join('\n')}
</svg>`;
}

function num(n: number | undefined): string {
  return n === undefined ? NA : fmt(n);
}

function memoryCell(m: ModelReport): string {
  const last = m.memory?.perTenantMiB.at(-1);
  return last ? `${fmt(last.perTenantMiB)} @${last.tenants}` : NA;
}

function ratioCell(r: number | null): string {
  return r === null ? NA : `${fmt(r)}×`;
}
