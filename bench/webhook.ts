// The Pod webhook's latency (issue #18: "p99 under 5 ms at the API server, measured"). The
// operator from dist/ serves the webhook with the shipped configuration (config/webhook: its
// own certificates, failurePolicy Ignore, 3 s timeout) pointed at it on loopback; the harness
// creates Pods in selected namespaces, first to warm up (a process that has just started runs
// unoptimised code and is still syncing), then the measured Pods, one at a time and then
// `burst` at a time. The API server's own histogram
// (apiserver_admission_webhook_admission_duration_seconds) is the figure the target is about:
// its 5 ms bucket says exactly how many calls took longer. The floor is the same Pod creates
// in namespaces the webhook's selector leaves out: what a create costs without the call. The
// floor webhook (webhook-floor.ts) is registered next to the operator's, under a name of its
// own, for namespaces of its own, and the two are measured in turn, ABBA (half the Pods each
// time), so that neither gets the quieter minutes or the emptier cluster.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { V1Pod } from '@kubernetes/client-node';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import {
  bucketDelta,
  POD_WEBHOOK_NAME,
  podWebhookArgs,
  quantile,
  WEBHOOK_CONFIG_DIR,
  webhookConfigurationYaml,
  webhookDurations,
} from '../test/support/pod-webhook.ts';
import { BenchCluster, OPERATOR_NAMESPACE, REGISTRY_SERVER, RUN_LABEL } from './cluster.ts';
import {
  type BenchContext,
  namespaceNames,
  newPassword,
  runGroup,
  SECRET_NAME,
  SOURCE_SECRET,
  shortId,
  sleep,
  startOperator,
} from './context.ts';
import { parseMetrics } from './metrics.ts';
import type { BenchOperator } from './operator-run.ts';
import { sampleProcess } from './process-stats.ts';
import type { ScenarioResult } from './report.ts';
import { type Percentiles, percentiles } from './sync-tracker.ts';

export interface WebhookPlan {
  /** Measured Pods per phase. */
  pods: number;
  /** Pods created before measuring. */
  warmup: number;
  /** Creates in flight in the burst phase. */
  burst: number;
}

// The shipped names: config/webhook/rbac.yaml grants the operator these objects only.
const CONFIGURATION = 'regcred-operator-pod-webhook';
const FLOOR_CONFIGURATION = 'regcred-bench-floor-webhook';
/** The floor webhook's name: the API server's metrics are labelled by webhook name. */
const FLOOR_WEBHOOK_NAME = 'floor.bench.regcred.dev';
const NAMESPACES = 10;
const FAIL_OPEN = 'apiserver_admission_webhook_fail_open_count';
const OWN_DURATION = 'regcred_pod_webhook_duration_seconds_bucket';

function pod(i: number): V1Pod {
  return {
    metadata: { name: `p-${i}` },
    spec: {
      // An entry of its own: the ServiceAccount admission plugin then copies none from the
      // ServiceAccount (which carries ours by now), so only the webhook can add it.
      imagePullSecrets: [{ name: 'team-pull' }],
      containers: [
        { name: 'app', image: `${REGISTRY_SERVER}/team/app:1.${i % 7}` },
        { name: 'sidecar', image: 'docker.io/library/busybox:1.36' },
      ],
    },
  };
}

/** The operator's own histogram: from the request's headers to the answer written. */
async function ownDurations(op: BenchOperator): Promise<Map<number, number>> {
  const buckets = new Map<number, number>();
  for (const s of parseMetrics(await op.metricsText(), new Set([OWN_DURATION]))) {
    const le = s.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(s.labels.le);
    buckets.set(le, (buckets.get(le) ?? 0) + s.value);
  }
  return buckets;
}

async function failOpen(cluster: BenchCluster, webhook: string): Promise<number> {
  let sum = 0;
  for (const s of parseMetrics(await cluster.plane.get('/metrics'), new Set([FAIL_OPEN]))) {
    if (s.labels.name === webhook) sum += s.value;
  }
  return sum;
}

interface Phase {
  /** Client-side create latencies, ms. */
  client: Percentiles;
  latencies: number[];
  pods: number;
  /** The API server's webhook calls, cumulative buckets (seconds). */
  calls: Map<number, number>;
  own: Map<number, number>;
  /** Created Pods whose spec came back without the credential's entry. */
  unpatched: number;
  failOpen: number;
  /** The operator's CPU over the phase, per Pod (ms). */
  cpuMsPerPod: number;
  /**
   * When the phase ran (one span per turn), in µs of CLOCK_MONOTONIC: the clock of a
   * --cpu-prof profile (`node bench/profile-summary.ts <file> --window <from>:<to>,...`).
   */
  windows: Array<{ from: number; to: number }>;
}

const seconds = (p: Phase) => p.windows.reduce((sum, w) => sum + (w.to - w.from), 0) / 1e6;
const windowsArg = (p: Phase) => p.windows.map((w) => `${w.from}:${w.to}`).join(',');

function sumBuckets(a: Map<number, number>, b: Map<number, number>): Map<number, number> {
  const sum = new Map(a);
  for (const [le, count] of b) sum.set(le, (sum.get(le) ?? 0) + count);
  return sum;
}

/** Two turns of one server's phase as one phase. */
function combine(a: Phase, b: Phase): Phase {
  const latencies = [...a.latencies, ...b.latencies];
  const pods = a.pods + b.pods;
  return {
    client: percentiles(latencies),
    latencies,
    pods,
    calls: sumBuckets(a.calls, b.calls),
    own: sumBuckets(a.own, b.own),
    unpatched: a.unpatched + b.unpatched,
    failOpen: a.failOpen + b.failOpen,
    cpuMsPerPod: (a.cpuMsPerPod * a.pods + b.cpuMsPerPod * b.pods) / pods,
    windows: [...a.windows, ...b.windows],
  };
}

const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

/** Creates `count` Pods, `inFlight` at a time, round-robin over `namespaces`. */
async function createPods(
  cluster: BenchCluster,
  namespaces: readonly string[],
  first: number,
  count: number,
  inFlight: number,
): Promise<{ latencies: number[]; unpatched: number }> {
  const latencies: number[] = [];
  let unpatched = 0;
  let next = first;
  const end = first + count;
  const worker = async () => {
    while (next < end) {
      const i = next++;
      const namespace = namespaces[i % namespaces.length] ?? '';
      const started = performance.now();
      const created = await cluster.core.createNamespacedPod({ namespace, body: pod(i) });
      latencies.push(performance.now() - started);
      if (!(created.spec?.imagePullSecrets ?? []).some((s) => s.name === SECRET_NAME)) {
        unpatched += 1;
      }
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return { latencies, unpatched };
}

/** What serves a phase: the operator, the floor webhook, or nothing (namespaces left out). */
interface Server {
  op?: BenchOperator;
  pid?: number;
  /** The webhook's name in the API server's metrics. */
  webhook: string;
}

async function measure(
  cluster: BenchCluster,
  server: Server,
  namespaces: readonly string[],
  first: number,
  count: number,
  inFlight: number,
): Promise<Phase> {
  const { op } = server;
  const cpuNow = () =>
    op ? op.sample().cpuSeconds : server.pid ? sampleProcess(server.pid).cpuSeconds : 0;
  const calls = await webhookDurations(cluster.plane, server.webhook);
  const own = op ? await ownDurations(op) : new Map<number, number>();
  const failed = await failOpen(cluster, server.webhook);
  const cpuBefore = cpuNow();
  const from = monotonicUs();
  const run = await createPods(cluster, namespaces, first, count, inFlight);
  const to = monotonicUs();
  const cpu = cpuNow() - cpuBefore;
  return {
    cpuMsPerPod: (cpu * 1000) / count,
    windows: [{ from, to }],
    client: percentiles(run.latencies),
    latencies: run.latencies,
    pods: count,
    calls: bucketDelta(await webhookDurations(cluster.plane, server.webhook), calls),
    own: op ? bucketDelta(await ownDurations(op), own) : new Map(),
    unpatched: run.unpatched,
    failOpen: (await failOpen(cluster, server.webhook)) - failed,
  };
}

/**
 * Until a dry-run Pod comes back patched: the API server has loaded the configuration and
 * trusts the server's certificate. `who` names what failed to answer.
 */
async function waitPatched(cluster: BenchCluster, namespace: string, who: () => string) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const probe = await cluster.core.createNamespacedPod({
      namespace,
      body: pod(-1),
      dryRun: 'All',
    });
    if ((probe.spec?.imagePullSecrets ?? []).some((s) => s.name === SECRET_NAME)) return;
    if (Date.now() > deadline) throw new Error(`the API server never called ${who()}`);
    await sleep(200);
  }
}

/** bench/webhook-floor.ts in its own process, with the operator's NODE_OPTIONS and node flags. */
class FloorWebhook {
  private readonly child: ReturnType<typeof spawn>;
  readonly pid: number;
  readonly port: number;
  readonly ca: string;

  private constructor(child: ReturnType<typeof spawn>, pid: number, port: number, ca: string) {
    this.child = child;
    this.pid = pid;
    this.port = port;
    this.ca = ca;
  }

  static async start(
    nodeOptions: string | undefined,
    nodeFlags: readonly string[],
  ): Promise<FloorWebhook> {
    const env: NodeJS.ProcessEnv = { ...process.env };
    if (nodeOptions !== undefined) env.NODE_OPTIONS = nodeOptions;
    const child = spawn(
      process.execPath,
      [...nodeFlags, join(import.meta.dirname, 'webhook-floor.ts'), SECRET_NAME],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
        env,
      },
    );
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    const first = await new Promise<string>((resolve, reject) => {
      lines.once('line', resolve);
      child.once('exit', (code) => reject(new Error(`the floor webhook exited (${code})`)));
    });
    lines.close();
    const { port, ca } = JSON.parse(first) as { port: number; ca: string };
    return new FloorWebhook(child, child.pid ?? 0, port, ca);
  }

  /** SIGTERM, and the exit (with --cpu-prof, the profile is written by then). */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill();
    await Promise.race([exited, sleep(10_000)]);
  }
}

/** Calls within 5 ms at the API server (its bucket's exact count), and all calls. */
const within5 = (p: Phase) => p.calls.get(0.005) ?? 0;
const total = (p: Phase) => p.calls.get(Number.POSITIVE_INFINITY) ?? 0;

/**
 * One phase's figures for the JSON: at the API server (`<calls>Within5ms<phase>`,
 * `<calls>P50Ms<phase>`, `<calls>P99Ms<phase>`), inside the server if it reports them, and its
 * CPU per Pod (`<server>…<phase>`).
 */
function phaseDetails(
  calls: string,
  server: string,
  phase: 'Serial' | 'Burst',
  p: Phase,
): Record<string, string> {
  const details: Record<string, string> = {
    [`${calls}Within5ms${phase}`]: `${within5(p)}/${total(p)}`,
    [`${calls}P50Ms${phase}`]: ms(quantile(p.calls, 0.5)),
    [`${calls}P99Ms${phase}`]: ms(quantile(p.calls, 0.99)),
    [`${server}CpuMsPerPod${phase}`]: p.cpuMsPerPod.toFixed(3),
    [`${server}Windows${phase}`]: windowsArg(p),
    [`${server}Seconds${phase}`]: seconds(p).toFixed(1),
  };
  if (p.own.size > 0) {
    details[`${server}P50Ms${phase}`] = ms(quantile(p.own, 0.5));
    details[`${server}P99Ms${phase}`] = ms(quantile(p.own, 0.99));
  }
  return details;
}

const ms = (seconds: number) => (seconds * 1000).toFixed(2);

/** The shipped configuration for the floor webhook: its own name, its namespaces, its CA. */
function floorConfigurationYaml(port: number, runLabel: string, ca: string): string {
  const manifest = parseYaml(
    webhookConfigurationYaml({
      name: FLOOR_CONFIGURATION,
      port,
      matchLabels: { [RUN_LABEL]: runLabel },
      caBundle: ca,
    }),
  ) as { webhooks: Array<{ name: string }> };
  for (const webhook of manifest.webhooks) webhook.name = FLOOR_WEBHOOK_NAME;
  return stringifyYaml(manifest);
}

export async function runWebhook(ctx: BenchContext, plan: WebhookPlan): Promise<ScenarioResult[]> {
  return runGroup(ctx, [{ scenario: 'webhook', n: plan.pods }], async (results) => {
    const log = ctx.log;
    const cluster = await BenchCluster.start(log);
    try {
      const kubectl = async (args: string[], input?: string) => {
        const result = await cluster.plane.kubectl(args, input === undefined ? {} : { input });
        if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${result.stderr}`);
      };
      await kubectl(['apply', '-f', join(WEBHOOK_CONFIG_DIR, 'rbac.yaml')]);
      const runId = `hook-${shortId()}`;
      await cluster.createSourceSecret(SOURCE_SECRET, newPassword());
      await cluster.createCredential(`bench-${runId}`, runId, SECRET_NAME, SOURCE_SECRET);
      // The operator's webhook is called for `selected`, the floor webhook for `hooked`, no
      // webhook for `outside`.
      const selected = namespaceNames(runId, NAMESPACES);
      const floorRun = `hookf-${shortId()}`;
      const outside = namespaceNames(floorRun, NAMESPACES);
      const hookRun = `hookw-${shortId()}`;
      const hooked = namespaceNames(hookRun, NAMESPACES);
      await cluster.createNamespacesAndWait(selected, { [RUN_LABEL]: runId });
      await cluster.createNamespacesAndWait(outside, { [RUN_LABEL]: floorRun });
      await cluster.createNamespacesAndWait(hooked, { [RUN_LABEL]: hookRun });

      let next = 0;
      const webhook = await podWebhookArgs(CONFIGURATION);
      const op = await startOperator(
        { ...ctx, operatorArgs: [...ctx.operatorArgs, ...webhook.args] },
        cluster,
      );
      let floorHook: FloorWebhook | undefined;
      try {
        await op.waitIdle({ minReconciles: 1 });
        // As shipped (Ignore), for the selected namespaces only.
        await kubectl(
          ['apply', '-f', '-'],
          webhookConfigurationYaml({
            name: CONFIGURATION,
            port: webhook.port,
            matchLabels: { [RUN_LABEL]: runId },
          }),
        );
        await waitPatched(
          cluster,
          selected[0] ?? '',
          () => `the webhook; the operator's last log lines:\n${op.lastLogs(15).join('\n')}`,
        );
        // The floor webhook: the same configuration (Ignore, 3 s), its own name and namespaces.
        floorHook = await FloorWebhook.start(ctx.operatorNodeOptions, ctx.operatorNodeFlags);
        const hook = floorHook;
        log(`[bench] webhook: operator pid ${op.pid}, floor webhook pid ${hook.pid}`);
        await kubectl(['apply', '-f', '-'], floorConfigurationYaml(hook.port, hookRun, hook.ca));
        await waitPatched(cluster, hooked[0] ?? '', () => 'the floor webhook');
        const operator: Server = { op, webhook: POD_WEBHOOK_NAME };
        const floorWebhook: Server = { pid: hook.pid, webhook: FLOOR_WEBHOOK_NAME };
        const none: Server = { webhook: '' };
        log(`[bench] webhook: ${plan.warmup} Pods to warm up each webhook`);
        await createPods(cluster, selected, next, plan.warmup, 1);
        next += plan.warmup;
        await createPods(cluster, hooked, next, plan.warmup, 1);
        next += plan.warmup;
        await cluster.waitQuiet();
        // What each spends with nothing to do (subtracted from nothing; for reading the per-Pod
        // CPU below), over the same 5 s.
        const idleFrom = [op.sample().cpuSeconds, sampleProcess(hook.pid).cpuSeconds];
        await sleep(5_000);
        const idleCpuMsPerSecond = ((op.sample().cpuSeconds - (idleFrom[0] ?? 0)) * 1000) / 5;
        const floorIdleCpuMsPerSecond =
          ((sampleProcess(hook.pid).cpuSeconds - (idleFrom[1] ?? 0)) * 1000) / 5;
        log(
          `[bench] webhook: idle CPU: operator ${idleCpuMsPerSecond.toFixed(1)} ms/s, floor webhook ${floorIdleCpuMsPerSecond.toFixed(1)} ms/s`,
        );
        /** One phase of both webhooks, ABBA: operator, floor, floor, operator, half each. */
        const interleaved = async (inFlight: number): Promise<[Phase, Phase]> => {
          const half = Math.ceil(plan.pods / 2);
          const turn = async (server: Server, namespaces: readonly string[], count: number) => {
            const p = await measure(cluster, server, namespaces, next, count, inFlight);
            next += count;
            return p;
          };
          const op1 = await turn(operator, selected, half);
          const floor1 = await turn(floorWebhook, hooked, half);
          const floor2 = await turn(floorWebhook, hooked, plan.pods - half);
          const op2 = await turn(operator, selected, plan.pods - half);
          return [combine(op1, op2), combine(floor1, floor2)];
        };
        log(`[bench] webhook: ${plan.pods} Pods one at a time without a webhook (floor)`);
        const floorSerial = await measure(cluster, none, outside, next, plan.pods, 1);
        next += plan.pods;
        log(`[bench] webhook: ${plan.pods} Pods one at a time to each webhook, ABBA`);
        const [serial, hookSerial] = await interleaved(1);
        log(`[bench] webhook: ${plan.pods} Pods ${plan.burst} at a time without a webhook (floor)`);
        const floorBurst = await measure(cluster, none, outside, next, plan.pods, plan.burst);
        next += plan.pods;
        log(`[bench] webhook: ${plan.pods} Pods ${plan.burst} at a time to each webhook, ABBA`);
        const [burst, hookBurst] = await interleaved(plan.burst);
        if (serial.failOpen + burst.failOpen > 0) {
          log(`[bench] operator's last log lines:\n${op.lastLogs(10).join('\n')}`);
        }
        for (const [name, p] of [
          ['serial', serial],
          [`${plan.burst} in flight`, burst],
          ['floor webhook serial', hookSerial],
          [`floor webhook ${plan.burst} in flight`, hookBurst],
        ] as const) {
          log(
            `[bench] webhook ${name}: ${total(p)} calls, ${within5(p)} within 5 ms; API server p50 ${ms(quantile(p.calls, 0.5))} ms, p99 ${ms(quantile(p.calls, 0.99))} ms; ${p.own.size > 0 ? `operator p50 ${ms(quantile(p.own, 0.5))} ms, p99 ${ms(quantile(p.own, 0.99))} ms; ` : ''} client p50/p99 ${p.client.p50.toFixed(2)}/${p.client.p99.toFixed(2)} ms; server CPU ${p.cpuMsPerPod.toFixed(2)} ms per Pod over ${seconds(p).toFixed(1)} s; ${p.unpatched} unpatched, ${p.failOpen} failed open; profile windows ${windowsArg(p)}`,
          );
        }
        results.push({
          scenario: 'webhook',
          n: plan.pods,
          latencyMs: serial.client,
          floorLatencyMs: floorSerial.client,
          notes: [
            `Pods created one at a time, then ${plan.burst} at a time, after ${plan.warmup} to warm up each webhook; the operator's and the floor webhook's phases interleaved ABBA; latency columns: the client's Pod create, with the operator's webhook / without any (floor)`,
          ],
          details: {
            ...phaseDetails('apiServer', 'operator', 'Serial', serial),
            ...phaseDetails('apiServer', 'operator', 'Burst', burst),
            ...phaseDetails('floorWebhook', 'floorWebhook', 'Serial', hookSerial),
            ...phaseDetails('floorWebhook', 'floorWebhook', 'Burst', hookBurst),
            operatorIdleCpuMsPerSecond: idleCpuMsPerSecond.toFixed(1),
            floorWebhookIdleCpuMsPerSecond: floorIdleCpuMsPerSecond.toFixed(1),
            burstInFlight: plan.burst,
            burstClientP50P99Ms: `${burst.client.p50.toFixed(2)}/${burst.client.p99.toFixed(2)}`,
            burstFloorClientP50P99Ms: `${floorBurst.client.p50.toFixed(2)}/${floorBurst.client.p99.toFixed(2)}`,
            unpatched: serial.unpatched + burst.unpatched,
            failedOpen: serial.failOpen + burst.failOpen,
            // The 5 ms bucket's exact counts decide the target; the quantiles are interpolated.
            callsSerial: total(serial),
            within5msSerial: within5(serial),
            callsBurst: total(burst),
            within5msBurst: within5(burst),
          },
        });
      } finally {
        await floorHook?.stop();
        await op.stop();
        await cluster.core
          .deleteNamespacedSecret({ namespace: OPERATOR_NAMESPACE, name: `${CONFIGURATION}-tls` })
          .catch(() => undefined);
      }
    } finally {
      await cluster.stop();
    }
  });
}
