// Results, target checks and the printed table.
import { countWhere, MUTATING_VERBS, READ_VERBS, type RequestCounts } from './metrics.ts';
import type { Percentiles } from './sync-tracker.ts';

export type ScenarioName =
  | 'fanout'
  | 'rotation'
  | 'onboarding'
  | 'steady'
  | 'resync'
  | 'memory'
  | 'webhook'
  // --scale (bench/scale.ts, bench/scale-multi.ts)
  | 'scale-fanout'
  | 'scale-rotation'
  | 'multi-fanout'
  | 'multi-rotation'
  | 'onboarding-under-load'
  | 'scale-memory'
  | 'scale-restart'
  | 'scale-idle';

export interface ScenarioResult {
  scenario: ScenarioName;
  n: number;
  /** Operator wall time (watch-observed), or the idle window for steady state. */
  wallSeconds?: number;
  floorSeconds?: number;
  /** wallSeconds / floorSeconds. */
  ratio?: number;
  /** Until the status said Ready with every namespace synced (fan-out). */
  readySeconds?: number;
  latencyMs?: Percentiles;
  floorLatencyMs?: Percentiles;
  operatorCpuSeconds?: number;
  /** CPU seconds of the floor client (fan-out, rotation), its measurement watches included. */
  floorCpuSeconds?: number;
  /**
   * etcd + kube-apiserver + kube-controller-manager CPU seconds in the operator's window (it
   * runs to idle, a little past the wall time) and in the floor's.
   */
  clusterCpuSeconds?: number;
  floorClusterCpuSeconds?: number;
  operatorPeakRssMB?: number;
  /**
   * apiserver_request_total delta over the scenario's window, by verb and resource, minus
   * harnessRequests (the benchmark's own requests and the cluster's known reactions to them).
   */
  apiRequests?: RequestCounts;
  harnessRequests?: RequestCounts;
  floorApiRequests?: RequestCounts;
  /** regcred_api_writes_total delta over the window. */
  operatorWrites?: RequestCounts;
  /** regcred_api_requests_total delta over the window (the operator's own, reads included). */
  operatorRequests?: RequestCounts;
  /** Reconciles completed in the window and their summed duration. */
  reconciles?: number;
  reconcileSeconds?: number;
  /**
   * --scale: the minimal writes of the window (Secret creates or updates, ServiceAccount
   * updates, one per ServiceAccount however many entries it gains), checked exactly.
   */
  minimalWrites?: { secrets: number; serviceAccounts: number; secretVerb: 'POST' | 'PUT' };
  /** Anything scenario-specific (memory phases, setup times). */
  details?: Record<string, number | string | boolean>;
  notes: string[];
  error?: string;
}

export type TargetStatus = 'PASS' | 'MISS' | 'n/a';

export interface TargetCheck {
  scenario: ScenarioName;
  n: number;
  target: string;
  measured: string;
  status: TargetStatus;
}

const WRITTEN_RESOURCES = ['secrets', 'serviceaccounts', 'registrycredentials'];
const NAMESPACED_READS = ['secrets', 'serviceaccounts', 'namespaces'];
const STATUS_WRITE_LIMIT = 5;
const RATIO_LIMIT = 1.3;
const RATIO_AT_N = 1000;
const ONBOARDING_P99_MS = 1000;
const MEMORY_LIMIT_MB = 150;
const MEMORY_AT_N = 3000;
const UNRELATED_GROWTH_LIMIT = 0.1;
const WEBHOOK_P99_MS = 5;

function check(ok: boolean): TargetStatus {
  return ok ? 'PASS' : 'MISS';
}

function fmt(value: number | undefined, digits = 2): string {
  return value === undefined || Number.isNaN(value) ? '-' : value.toFixed(digits);
}

/** The issue's targets, evaluated on what ran. A target stated for one N is n/a at another. */
export function checkTargets(results: readonly ScenarioResult[]): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const add = (r: ScenarioResult, target: string, measured: string, status: TargetStatus) =>
    checks.push({ scenario: r.scenario, n: r.n, target, measured, status });
  for (const r of results) {
    if (r.error) {
      add(r, 'scenario completes', r.error.split('\n')[0] ?? r.error, 'MISS');
      continue;
    }
    if (SCALE_SCENARIOS.has(r.scenario)) {
      checks.push(...checkScaleTargets(r));
      continue;
    }
    const requests = r.apiRequests ?? {};
    if ((r.scenario === 'fanout' || r.scenario === 'rotation') && r.ratio !== undefined) {
      add(
        r,
        `wall ≤ ${RATIO_LIMIT} × floor (at N=${RATIO_AT_N})`,
        `${fmt(r.wallSeconds)} s / ${fmt(r.floorSeconds)} s = ${fmt(r.ratio)}×`,
        r.n === RATIO_AT_N ? check(r.ratio <= RATIO_LIMIT) : 'n/a',
      );
    }
    if (r.scenario === 'fanout') {
      const creates = countWhere(requests, ['POST'], ['secrets']);
      const saUpdates = countWhere(requests, ['PUT'], ['serviceaccounts']);
      const otherWrites =
        countWhere(requests, MUTATING_VERBS, ['secrets', 'serviceaccounts']) - creates - saUpdates;
      const credWrites = countWhere(requests, ['PUT', 'PATCH', 'APPLY'], ['registrycredentials']);
      add(
        r,
        `exactly N Secret creates + N SA updates, ≤ ${STATUS_WRITE_LIMIT} credential writes`,
        `${creates} POST secrets, ${saUpdates} PUT sa, ${otherWrites} other, ${credWrites} credential`,
        check(
          creates === r.n &&
            saUpdates === r.n &&
            otherWrites === 0 &&
            credWrites <= STATUS_WRITE_LIMIT,
        ),
      );
    }
    if (r.scenario === 'fanout' || r.scenario === 'rotation') {
      const reads = countWhere(requests, READ_VERBS, NAMESPACED_READS);
      const own = countWhere(r.operatorRequests ?? {}, ['get', 'list'], NAMESPACED_READS);
      // A new secretName starts one cache of the Secrets under that name that are not ours
      // (src/kube/named-secrets.ts): one LIST for the credential, never one per namespace.
      const allowed = r.scenario === 'fanout' ? 1 : 0;
      add(
        r,
        `no per-namespace GET/LIST of secrets, SAs, namespaces (≤ ${allowed} LIST)`,
        `${reads} at the apiserver, ${own} by the operator`,
        check(reads <= allowed && own === 0),
      );
    }
    if (r.scenario === 'onboarding' && r.latencyMs) {
      add(
        r,
        `SA entry p99 ≤ ${ONBOARDING_P99_MS} ms`,
        `p99 ${fmt(r.latencyMs.p99, 0)} ms (floor ${fmt(r.floorLatencyMs?.p99, 0)} ms)`,
        check(r.latencyMs.p99 <= ONBOARDING_P99_MS && r.latencyMs.count === r.n),
      );
    }
    if (r.scenario === 'steady' || r.scenario === 'resync') {
      const apiWrites = countWhere(requests, MUTATING_VERBS, WRITTEN_RESOURCES);
      const own = Object.values(r.operatorWrites ?? {}).reduce((a, b) => a + b, 0);
      add(
        r,
        '0 writes (apiserver and regcred_api_writes_total)',
        `${apiWrites} apiserver, ${own} operator`,
        check(apiWrites === 0 && own === 0),
      );
    }
    if (r.scenario === 'webhook' && r.details) {
      // p99 ≤ 5 ms ⇔ at least 99 % of the calls in the API server's 5 ms bucket: exact, where an
      // interpolated quantile inside the 5-25 ms bucket would not be.
      for (const phase of ['Serial', 'Burst'] as const) {
        const calls = Number(r.details[`calls${phase}`]);
        const within = Number(r.details[`within5ms${phase}`]);
        const label = phase === 'Serial' ? 'one at a time' : `${r.details.burstInFlight} in flight`;
        add(
          r,
          `webhook p99 < ${WEBHOOK_P99_MS} ms at the API server (${label})`,
          `${within}/${calls} calls within 5 ms (p99 ${r.details[`apiServerP99Ms${phase}`]} ms, p50 ${r.details[`apiServerP50Ms${phase}`]} ms)`,
          check(calls >= r.n && within >= 0.99 * calls),
        );
      }
      add(
        r,
        'floor: a webhook that only parses and patches (bench/webhook-floor.ts), same Pods',
        `within 5 ms: ${r.details.floorWebhookWithin5msSerial} one at a time (p99 ${r.details.floorWebhookP99MsSerial} ms), ${r.details.floorWebhookWithin5msBurst} ${r.details.burstInFlight} in flight (p99 ${r.details.floorWebhookP99MsBurst} ms)`,
        'n/a',
      );
      add(
        r,
        'every Pod gets the entry, no call fails open',
        `${r.details.unpatched} unpatched, ${r.details.failedOpen} failed open`,
        check(r.details.unpatched === 0 && r.details.failedOpen === 0),
      );
    }
    if (r.scenario === 'memory' && r.details) {
      const without = Number(r.details.peakRssWithoutMB);
      const withUnrelated = Number(r.details.peakRssWithUnrelatedMB);
      const fanout = Number(r.details.peakRssFanoutMB);
      const peak = Math.max(without, fanout);
      add(
        r,
        `peak RSS ≤ ${MEMORY_LIMIT_MB} MB (at N=${MEMORY_AT_N})`,
        `${fmt(peak, 1)} MB`,
        r.n === MEMORY_AT_N ? check(peak <= MEMORY_LIMIT_MB) : 'n/a',
      );
      const growth = (withUnrelated - without) / without;
      add(
        r,
        `unrelated Secrets add < ${UNRELATED_GROWTH_LIMIT * 100} %`,
        `${fmt(without, 1)} → ${fmt(withUnrelated, 1)} MB (${fmt(growth * 100, 1)} %)`,
        check(growth < UNRELATED_GROWTH_LIMIT),
      );
    }
  }
  return checks;
}

function pad(cells: readonly string[], widths: readonly number[]): string {
  return cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ');
}

function table(header: readonly string[], rows: readonly string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [
    pad(header, widths),
    pad(
      widths.map((w) => '-'.repeat(w)),
      widths,
    ),
    ...rows.map((r) => pad(r, widths)),
  ].join('\n');
}

function writesCell(requests: RequestCounts | undefined): string {
  if (!requests) return '-';
  const c = (verbs: readonly string[], resource: string) => countWhere(requests, verbs, [resource]);
  return `${c(MUTATING_VERBS, 'secrets')}/${c(MUTATING_VERBS, 'serviceaccounts')}/${c(MUTATING_VERBS, 'registrycredentials')}`;
}

/** GET+LIST of secrets, SAs and namespaces: all clients (apiserver) / the operator's own. */
function readsCell(r: ScenarioResult): string {
  if (!r.apiRequests) return '-';
  const all = countWhere(r.apiRequests, READ_VERBS, NAMESPACED_READS);
  const own = r.operatorRequests
    ? String(countWhere(r.operatorRequests, ['get', 'list'], NAMESPACED_READS))
    : '-';
  return `${all}/${own}`;
}

function latencyCell(p: Percentiles | undefined): string {
  return p ? `${fmt(p.p50, 0)}/${fmt(p.p95, 0)}/${fmt(p.p99, 0)}` : '-';
}

export function resultsTable(results: readonly ScenarioResult[]): string {
  const header = [
    'scenario',
    'N',
    'wall s',
    'floor s',
    'ratio',
    'ready s',
    'p50/p95/p99 ms',
    'floor p50/p95/p99',
    'op CPU s',
    'floor CPU s',
    'cluster CPU op/floor',
    'op peak RSS MB',
    'writes sec/sa/rc',
    'GET+LIST all/op',
  ];
  const rows = results.map((r) => [
    r.scenario,
    String(r.n),
    r.error ? 'ERROR' : fmt(r.wallSeconds),
    fmt(r.floorSeconds),
    r.ratio === undefined ? '-' : `${fmt(r.ratio)}×`,
    fmt(r.readySeconds),
    latencyCell(r.latencyMs),
    latencyCell(r.floorLatencyMs),
    fmt(r.operatorCpuSeconds),
    fmt(r.floorCpuSeconds),
    r.clusterCpuSeconds === undefined
      ? '-'
      : `${fmt(r.clusterCpuSeconds, 1)}/${fmt(r.floorClusterCpuSeconds, 1)}`,
    fmt(r.operatorPeakRssMB, 1),
    writesCell(r.apiRequests),
    readsCell(r),
  ]);
  return table(header, rows);
}

export function targetsTable(checks: readonly TargetCheck[]): string {
  return table(
    ['scenario', 'N', 'target', 'measured', 'result'],
    checks.map((c) => [c.scenario, String(c.n), c.target, c.measured, c.status]),
  );
}

/** One line per scenario: the non-WATCH request counts. */
export function requestsSummary(results: readonly ScenarioResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    const fmtCounts = (counts: RequestCounts | undefined) =>
      Object.entries(counts ?? {})
        .filter(([key]) => !key.startsWith('WATCH'))
        .map(([key, value]) => `${key}=${value}`)
        .join(', ') || '(none)';
    if (r.apiRequests) lines.push(`${r.scenario} N=${r.n}: ${fmtCounts(r.apiRequests)}`);
    if (r.reconciles !== undefined) {
      lines.push(
        `  reconciles: ${r.reconciles}, ${fmt(r.reconcileSeconds)} s in total (mean ${fmt(((r.reconcileSeconds ?? 0) * 1000) / Math.max(1, r.reconciles), 0)} ms)`,
      );
    }
    if (r.floorApiRequests) lines.push(`  floor: ${fmtCounts(r.floorApiRequests)}`);
    if (r.operatorRequests && Object.keys(r.operatorRequests).length > 0) {
      lines.push(`  operator (regcred_api_requests_total): ${fmtCounts(r.operatorRequests)}`);
    }
    for (const note of r.notes) lines.push(`  note: ${note}`);
  }
  return lines.join('\n');
}

// ---- --scale (issue #20) ----

const SCALE_SCENARIOS: ReadonlySet<ScenarioName> = new Set([
  'scale-fanout',
  'scale-rotation',
  'multi-fanout',
  'multi-rotation',
  'onboarding-under-load',
  'scale-memory',
  'scale-restart',
  'scale-idle',
]);
const SCALE_WALL_RATIO = 1.2;
const SCALE_CPU_RATIO = 1.5;
const MULTI_WALL_RATIO = 1.3;
const SCALE_MEMORY_LIMIT_MB = 250;
const SCALE_RESTART_SECONDS = 20;

/** The issue's #20 targets for one --scale result. */
function checkScaleTargets(r: ScenarioResult): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const add = (target: string, measured: string, status: TargetStatus) =>
    checks.push({ scenario: r.scenario, n: r.n, target, measured, status });
  const requests = r.apiRequests ?? {};
  const ratioLimit = r.scenario.startsWith('multi') ? MULTI_WALL_RATIO : SCALE_WALL_RATIO;
  if (r.ratio !== undefined) {
    add(
      `wall ≤ ${ratioLimit} × floor`,
      `${fmt(r.wallSeconds)} s / ${fmt(r.floorSeconds)} s = ${fmt(r.ratio)}×`,
      check(r.ratio <= ratioLimit),
    );
  }
  if (
    (r.scenario === 'scale-fanout' || r.scenario === 'scale-rotation') &&
    r.operatorCpuSeconds !== undefined &&
    r.floorCpuSeconds !== undefined
  ) {
    const cpuRatio = r.operatorCpuSeconds / r.floorCpuSeconds;
    add(
      `operator CPU ≤ ${SCALE_CPU_RATIO} × floor client CPU`,
      `${fmt(r.operatorCpuSeconds)} s / ${fmt(r.floorCpuSeconds)} s = ${fmt(cpuRatio)}×`,
      check(cpuRatio <= SCALE_CPU_RATIO),
    );
  }
  if (r.minimalWrites) {
    const m = r.minimalWrites;
    const secretWrites = countWhere(requests, [m.secretVerb], ['secrets']);
    const saWrites = countWhere(requests, ['PUT'], ['serviceaccounts']);
    const otherWrites =
      countWhere(requests, MUTATING_VERBS, ['secrets', 'serviceaccounts']) -
      secretWrites -
      saWrites;
    const credWrites = countWhere(requests, ['PUT', 'PATCH', 'APPLY'], ['registrycredentials']);
    const credLimit = STATUS_WRITE_LIMIT * Math.max(1, Number(r.details?.credentials ?? 1));
    add(
      `exactly ${m.secrets} Secret ${m.secretVerb} + ${m.serviceAccounts} SA PUT, no other, ≤ ${credLimit} credential writes`,
      `${secretWrites} ${m.secretVerb} secrets, ${saWrites} PUT sa, ${otherWrites} other, ${credWrites} credential`,
      check(
        secretWrites === m.secrets &&
          saWrites === m.serviceAccounts &&
          otherWrites === 0 &&
          credWrites <= credLimit,
      ),
    );
  }
  if (r.scenario === 'onboarding-under-load' && r.latencyMs) {
    add(
      `SA entry p99 ≤ ${ONBOARDING_P99_MS} ms during the rotation`,
      `p99 ${fmt(r.latencyMs.p99, 0)} ms of ${r.latencyMs.count}/${r.details?.burst ?? '?'}`,
      check(r.latencyMs.p99 <= ONBOARDING_P99_MS && r.latencyMs.count === Number(r.details?.burst)),
    );
  }
  if (r.scenario === 'scale-memory' && r.details) {
    const without = Number(r.details.peakRssWithoutMB);
    const withUnrelated = Number(r.details.peakRssWithUnrelatedMB);
    const peak = r.operatorPeakRssMB ?? Number.NaN;
    add(
      `peak RSS ≤ ${SCALE_MEMORY_LIMIT_MB} MB (fan-out, fresh without, fresh with unrelated)`,
      `${fmt(peak, 1)} MB`,
      check(peak <= SCALE_MEMORY_LIMIT_MB),
    );
    const growth = (withUnrelated - without) / without;
    add(
      `unrelated Secrets + ConfigMaps add < ${UNRELATED_GROWTH_LIMIT * 100} %`,
      `${fmt(without, 1)} → ${fmt(withUnrelated, 1)} MB (${fmt(growth * 100, 1)} %)`,
      check(growth < UNRELATED_GROWTH_LIMIT),
    );
  }
  if (r.scenario === 'scale-restart' || r.scenario === 'scale-idle') {
    const apiWrites = countWhere(requests, MUTATING_VERBS, WRITTEN_RESOURCES);
    const own = Object.values(r.operatorWrites ?? {}).reduce((a, b) => a + b, 0);
    add(
      '0 writes (apiserver and regcred_api_writes_total)',
      `${apiWrites} apiserver, ${own} operator`,
      check(apiWrites === 0 && own === 0),
    );
  }
  if (r.scenario === 'scale-restart') {
    add(
      `restart to idle ≤ ${SCALE_RESTART_SECONDS} s`,
      `${fmt(r.wallSeconds, 1)} s`,
      check((r.wallSeconds ?? Number.POSITIVE_INFINITY) <= SCALE_RESTART_SECONDS),
    );
  }
  if (r.scenario === 'scale-idle') {
    // What the operator's informers list; kube-apiserver itself lists services every 3 min
    // (its ClusterIP repair loop), which is no client's.
    const lists = countWhere(
      requests,
      ['LIST'],
      ['secrets', 'serviceaccounts', 'namespaces', 'registrycredentials', 'leases'],
    );
    const expiries = Number(r.details?.watchExpiries ?? 0);
    add(
      'LISTs only on watch expiry (410), none periodic',
      `${lists} LIST of what the operator watches at the apiserver (all clients), ${expiries} expiries in the operator's log`,
      check(lists <= expiries),
    );
  }
  return checks;
}
