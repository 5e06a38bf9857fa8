// `--scale` scenario 2 (issue #20): C RegistryCredentials over M namespaces, each selecting a
// different random half (seeded), all created at once; then the source shared by S of them
// changes. Minimal writes: one Secret per (credential, namespace) it selects, and one
// ServiceAccount update per namespace however many entries it gains (the floor does exactly
// that: every Secret of a namespace, then one PUT of its default ServiceAccount); a rotation
// rewrites the shared credentials' Secrets and no ServiceAccount.
import type { V1Secret, V1ServiceAccount } from '@kubernetes/client-node';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../src/api/types.ts';
import {
  BenchCluster,
  hasPullSecret,
  holdsPassword,
  REGISTRY_SERVER,
  RUN_LABEL,
} from './cluster.ts';
import {
  type BenchContext,
  namespaceNames,
  newPassword,
  runGroup,
  seconds,
  shortId,
  startOperator,
} from './context.ts';
import {
  closeWindow,
  describeFloor,
  describeWindow,
  openWindow,
  type Window,
  withFloor,
} from './fanout.ts';
import {
  FLOOR_LABEL_SELECTOR,
  type FloorResult,
  floorMergedFanout,
  floorRotatePairs,
} from './floor.ts';
import type { BenchOperator } from './operator-run.ts';
import type { ScenarioResult } from './report.ts';
import { within } from './sync-tracker.ts';
import type { WatchEventType } from './watch.ts';

export interface MultiPlan {
  namespaces: number;
  credentials: number;
  /** Credentials sharing the one source that rotates. */
  shared: number;
  seed: number;
  /** 2: the floor runs again after the operator (the faster run counts). */
  pairs: number;
}

/** mulberry32: a small seeded PRNG, so every run selects the same halves. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** For each credential, the indices of the namespaces it selects: a random half. */
export function randomHalves(namespaces: number, credentials: number, seed: number): number[][] {
  const next = random(seed);
  return Array.from({ length: credentials }, () => {
    const order = Array.from({ length: namespaces }, (_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      [order[i], order[j]] = [order[j] as number, order[i] as number];
    }
    return order.slice(0, Math.floor(namespaces / 2)).sort((a, b) => a - b);
  });
}

const credentialLabel = (c: number) => `bench.regcred.dev/c${String(c).padStart(2, '0')}`;
const pad = (c: number) => String(c).padStart(2, '0');

/**
 * Done when every namespace holds each expected Secret with `password` and (when tracked) its
 * default ServiceAccount lists every one of them.
 */
class MultiTracker {
  private readonly pendingSecrets = new Map<string, Set<string>>();
  private readonly expectedEntries = new Map<string, readonly string[]>();
  private readonly pendingAccounts = new Set<string>();
  private remaining = 0;
  lastAt = 0;
  readonly done: Promise<void>;
  private resolve: () => void = () => {};

  private readonly password: string;

  constructor(
    expected: ReadonlyMap<string, readonly string[]>,
    password: string,
    serviceAccounts: boolean,
  ) {
    this.password = password;
    for (const [ns, names] of expected) {
      if (names.length === 0) continue;
      this.pendingSecrets.set(ns, new Set(names));
      this.remaining += names.length;
      if (serviceAccounts) {
        this.expectedEntries.set(ns, names);
        this.pendingAccounts.add(ns);
        this.remaining += 1;
      }
    }
    this.done = new Promise((r) => {
      this.resolve = r;
    });
    if (this.remaining === 0) this.resolve();
  }

  get left(): number {
    return this.remaining;
  }

  onSecret = (type: WatchEventType, secret: V1Secret, at: number): void => {
    if (type === 'DELETED') return;
    const pending = this.pendingSecrets.get(secret.metadata?.namespace ?? '');
    const name = secret.metadata?.name ?? '';
    if (!pending?.has(name) || !holdsPassword(secret, this.password)) return;
    pending.delete(name);
    this.tick(at);
  };

  onServiceAccount = (type: WatchEventType, sa: V1ServiceAccount, at: number): void => {
    const ns = sa.metadata?.namespace ?? '';
    if (type === 'DELETED' || sa.metadata?.name !== 'default' || !this.pendingAccounts.has(ns)) {
      return;
    }
    const names = this.expectedEntries.get(ns) ?? [];
    if (!names.every((name) => hasPullSecret(sa, name))) return;
    this.pendingAccounts.delete(ns);
    this.tick(at);
  };

  private tick(at: number): void {
    this.lastAt = Math.max(this.lastAt, at);
    if (--this.remaining === 0) this.resolve();
  }
}

export async function runMultiCredential(
  ctx: BenchContext,
  plan: MultiPlan,
): Promise<ScenarioResult[]> {
  const m = plan.namespaces;
  return runGroup(
    ctx,
    [
      { scenario: 'multi-fanout', n: m },
      { scenario: 'multi-rotation', n: m },
    ],
    async (results) => {
      const log = ctx.log;
      const cluster = await BenchCluster.start(log, [], { controllerManagerQps: 1000 });
      try {
        const runId = `m${m}-${shortId()}`;
        const namespaces = namespaceNames(runId, m);
        const halves = randomHalves(m, plan.credentials, plan.seed);
        const selecting = new Map<string, number[]>(namespaces.map((ns) => [ns, []]));
        halves.forEach((indices, c) => {
          for (const i of indices) selecting.get(namespaces[i] as string)?.push(c);
        });
        const labelsOf = (ns: string): Record<string, string> => ({
          [RUN_LABEL]: runId,
          ...Object.fromEntries((selecting.get(ns) ?? []).map((c) => [credentialLabel(c), 'true'])),
        });
        log(`[multi] ${plan.credentials} credentials over ${m} namespaces: creating namespaces`);
        const setup = await cluster.createNamespacesAndWait(namespaces, labelsOf);
        log(`[multi] namespaces created in ${seconds(setup.createMs).toFixed(1)} s`);
        const sourceOf = (c: number) => (c < plan.shared ? 'bench-shared' : `bench-src-${pad(c)}`);
        const firstPassword = newPassword();
        const secondPassword = newPassword();
        for (const source of new Set(halves.map((_, c) => sourceOf(c)))) {
          await cluster.createSourceSecret(source, firstPassword);
        }
        const secretsIn = (prefix: string, only?: (c: number) => boolean) =>
          new Map(
            namespaces.map((ns) => [
              ns,
              (selecting.get(ns) ?? [])
                .filter((c) => only?.(c) ?? true)
                .map((c) => `${prefix}${pad(c)}`),
            ]),
          );
        const secretWrites = halves.reduce((sum, h) => sum + h.length, 0);
        const accountWrites = namespaces.filter(
          (ns) => (selecting.get(ns) ?? []).length > 0,
        ).length;
        const sharedWrites = halves.slice(0, plan.shared).reduce((sum, h) => sum + h.length, 0);
        const isShared = (c: number) => c < plan.shared;

        const floorFan: FloorResult[] = [];
        const floorRot: FloorResult[] = [];
        const runFloor = async (prefix: string) => {
          log(
            `[multi] floor (${prefix}NN): ${secretWrites} Secrets + ${accountWrites} ServiceAccount PUTs`,
          );
          const fanPlan = [...secretsIn(prefix)].map(([namespace, secretNames]) => ({
            namespace,
            secretNames,
          }));
          floorFan.push(
            await observed(cluster, secretsIn(prefix), firstPassword, true, () =>
              floorMergedFanout(cluster, fanPlan, firstPassword, ctx.concurrency),
            ),
          );
          const pairs = [...secretsIn(prefix, isShared)].flatMap(([namespace, names]) =>
            names.map((secretName) => ({ namespace, secretName })),
          );
          floorRot.push(
            await observed(cluster, secretsIn(prefix, isShared), secondPassword, false, () =>
              floorRotatePairs(cluster, pairs, secondPassword, ctx.concurrency),
            ),
          );
          log(
            `[multi] floor fan-out ${describeFloor(floorFan.at(-1))}, rotation ${describeFloor(floorRot.at(-1))}`,
          );
        };
        await runFloor('floor-pull-');

        const op = await startOperator(ctx, cluster);
        let fan: Window;
        let rot: Window;
        try {
          log(`[multi] operator: ${plan.credentials} RegistryCredentials at once`);
          // When each create was answered: how far apart the changes reached the API server.
          const createdAt: number[] = [];
          const createNotes: string[] = [];
          fan = await measure(
            cluster,
            op,
            secretsIn('pull-'),
            firstPassword,
            true,
            async () => {
              const createsFrom = performance.now();
              await cluster.forEachConcurrently(
                halves.map((_, c) => c),
                8,
                async (c) => {
                  await cluster.createCredentialWithSpec(`bench-multi-${pad(c)}`, {
                    secretName: `pull-${pad(c)}`,
                    namespaceSelector: { matchLabels: { [credentialLabel(c)]: 'true' } },
                    registries: [
                      { server: REGISTRY_SERVER, basic: { secretRef: { name: sourceOf(c) } } },
                    ],
                  });
                  createdAt.push(performance.now());
                },
              );
              createNotes.push(createSpread(createsFrom, createdAt));
              return { 'POST registrycredentials': plan.credentials };
            },
            createNotes,
          );
          log(`[multi] ${describeWindow(fan)}`);
          log(`[multi] operator: rotation of the source shared by ${plan.shared}`);
          rot = await measure(
            cluster,
            op,
            secretsIn('pull-', isShared),
            secondPassword,
            false,
            async () => {
              await cluster.setSourcePassword('bench-shared', secondPassword);
              return { 'PATCH secrets': 1 };
            },
          );
          log(`[multi] ${describeWindow(rot)}`);
        } finally {
          await op.stop();
        }
        if (plan.pairs > 1) await runFloor('floor2-pull-');

        const details = {
          credentials: plan.credentials,
          sharedCredentials: plan.shared,
          seed: plan.seed,
          namespaceCreateSeconds: seconds(setup.createMs),
          meanCredentialsPerNamespace: secretWrites / m,
        };
        const fanResult = withFloor('multi-fanout', m, [fan], floorFan);
        const saPuts = fanResult.apiRequests?.['PUT serviceaccounts'] ?? 0;
        results.push({
          ...fanResult,
          minimalWrites: {
            secrets: secretWrites,
            serviceAccounts: accountWrites,
            secretVerb: 'POST',
          },
          details: { ...fanResult.details, ...details },
          notes: [
            ...fanResult.notes,
            `ServiceAccount updates: ${saPuts} for ${accountWrites} ServiceAccounts (${(saPuts / accountWrites).toFixed(2)} per ServiceAccount; minimal 1, one per credential would be ${(secretWrites / accountWrites).toFixed(2)})`,
          ],
        });
        const rotResult = withFloor('multi-rotation', m, [rot], floorRot);
        results.push({
          ...rotResult,
          minimalWrites: { secrets: sharedWrites, serviceAccounts: 0, secretVerb: 'PUT' },
          details: { ...rotResult.details, ...details },
        });
      } finally {
        await cluster.stop();
      }
    },
  );
}

/**
 * How long the creates took from the first request to the last answer, and the longest wait
 * between two answers: a wait longer than the operator's gathering window (100 ms of a free
 * event loop) lets a batch start before the rest arrived, and those namespaces get a second
 * ServiceAccount write.
 */
export function createSpread(from: number, answeredAt: readonly number[]): string {
  // In the order the answers came (each time is taken when its create returns).
  let previous = from;
  let longest = 0;
  for (const at of answeredAt) {
    longest = Math.max(longest, at - previous);
    previous = at;
  }
  const span = previous - from;
  return `${answeredAt.length} RegistryCredential creates answered within ${Math.round(span)} ms; the longest wait between two answers ${Math.round(longest)} ms`;
}

/** The operator's window: `act` starts the change and names the harness's own requests. */
async function measure(
  cluster: BenchCluster,
  op: BenchOperator,
  expected: ReadonlyMap<string, readonly string[]>,
  password: string,
  serviceAccounts: boolean,
  act: () => Promise<Record<string, number>>,
  notes: string[] = [],
): Promise<Window> {
  const tracker = new MultiTracker(expected, password, serviceAccounts);
  const total = tracker.left;
  const watches = await Promise.all([
    cluster
      .watchSecrets({ labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}` }, tracker.onSecret)
      .start(),
    ...(serviceAccounts
      ? [
          cluster
            .watchServiceAccounts(
              { fieldSelector: 'metadata.name=default' },
              tracker.onServiceAccount,
            )
            .start(),
        ]
      : []),
  ]);
  try {
    const start = await openWindow(cluster, op);
    const started = performance.now();
    const harness = await act();
    const timeoutMs = 120_000 + 20 * total;
    if (!(await within(tracker.done, timeoutMs))) {
      throw new Error(
        `${tracker.left} of ${total} Secrets and ServiceAccounts not synced after ${timeoutMs / 1000} s; operator logs:\n${op.lastLogs().join('\n')}`,
      );
    }
    return await closeWindow(cluster, op, start, tracker.lastAt - started, notes, harness);
  } finally {
    for (const w of watches) w.stop();
  }
}

/** A floor run with the same measurement watches open (on the floor's label). */
async function observed(
  cluster: BenchCluster,
  expected: ReadonlyMap<string, readonly string[]>,
  password: string,
  serviceAccounts: boolean,
  run: () => Promise<FloorResult>,
): Promise<FloorResult> {
  const tracker = new MultiTracker(expected, password, serviceAccounts);
  const watches = await Promise.all([
    cluster.watchSecrets({ labelSelector: FLOOR_LABEL_SELECTOR }, tracker.onSecret).start(),
    ...(serviceAccounts
      ? [
          cluster
            .watchServiceAccounts(
              { fieldSelector: 'metadata.name=default' },
              tracker.onServiceAccount,
            )
            .start(),
        ]
      : []),
  ]);
  try {
    const result = await run();
    if (!(await within(tracker.done, 60_000))) return result;
    return { ...result, observedMs: tracker.lastAt - result.startedAt };
  } finally {
    for (const w of watches) w.stop();
  }
}
