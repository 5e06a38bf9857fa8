// The Pod webhook as tests run it: the shipped MutatingWebhookConfiguration (config/webhook),
// pointed at an operator process on loopback through a `url` client config instead of the
// Service, and the API server's own measurement of the calls.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import type { ControlPlane } from './controlplane.ts';
import { freePort } from './controlplane.ts';
import { type MetricSample, parseMetrics } from './operator.ts';

const repoRoot = join(import.meta.dirname, '..', '..');
export const WEBHOOK_CONFIG_DIR = join(repoRoot, 'config', 'webhook');
/** The webhook's name in the shipped configuration (the API server's metrics label). */
export const POD_WEBHOOK_NAME = 'pods.regcred.dev';

interface WebhookManifest {
  metadata: { name: string };
  webhooks: Array<{
    name: string;
    failurePolicy?: string;
    clientConfig: Record<string, unknown>;
    namespaceSelector?: { matchExpressions?: unknown[]; matchLabels?: Record<string, string> };
  }>;
}

export interface WebhookConfigurationOptions {
  /** The object's name (the operator's --pod-webhook-configuration). */
  name: string;
  port: number;
  /** Only namespaces with these labels are sent to the webhook (keeps other tests' Pods out). */
  matchLabels: Record<string, string>;
  /** Default: as shipped (Ignore). Fail turns any failed call into a refused Pod. */
  failurePolicy?: 'Ignore' | 'Fail';
  /** PEM CA(s) to trust; absent: the operator fills the caBundle. */
  caBundle?: string;
}

/** The shipped configuration, with a loopback url, a test selector, and no caBundle yet. */
export function webhookConfigurationYaml(o: WebhookConfigurationOptions): string {
  const manifest = parse(
    readFileSync(join(WEBHOOK_CONFIG_DIR, 'mutating_webhook_configuration.yaml'), 'utf8'),
  ) as WebhookManifest;
  manifest.metadata.name = o.name;
  for (const webhook of manifest.webhooks) {
    webhook.clientConfig = {
      url: `https://127.0.0.1:${o.port}/mutate-pods`,
      ...(o.caBundle ? { caBundle: Buffer.from(o.caBundle).toString('base64') } : {}),
    };
    webhook.namespaceSelector = {
      ...webhook.namespaceSelector,
      matchLabels: o.matchLabels,
    };
    if (o.failurePolicy) webhook.failurePolicy = o.failurePolicy;
  }
  return stringify(manifest);
}

/** Flags for an operator serving the webhook on a free loopback port. */
export async function podWebhookArgs(
  configurationName: string,
  extra: string[] = [],
): Promise<{ port: number; args: string[] }> {
  const port = await freePort();
  return {
    port,
    args: [
      `--pod-webhook-address=127.0.0.1:${port}`,
      '--pod-webhook-hosts=127.0.0.1',
      `--pod-webhook-configuration=${configurationName}`,
      `--pod-webhook-cert-secret=${configurationName}-tls`,
      ...extra,
    ],
  };
}

const DURATION = 'apiserver_admission_webhook_admission_duration_seconds';

/** The API server's histogram of calls to `webhook`, cumulative buckets by upper bound. */
export async function webhookDurations(
  plane: ControlPlane,
  webhook = POD_WEBHOOK_NAME,
): Promise<Map<number, number>> {
  const samples = parseMetrics(await plane.get('/metrics'), new Set([`${DURATION}_bucket`]));
  const buckets = new Map<number, number>();
  for (const sample of samples as MetricSample[]) {
    if (sample.labels.name !== webhook) continue;
    const le = sample.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(sample.labels.le);
    buckets.set(le, (buckets.get(le) ?? 0) + sample.value);
  }
  return buckets;
}

/** The calls between two snapshots, per bucket. */
export function bucketDelta(
  after: Map<number, number>,
  before: Map<number, number>,
): Map<number, number> {
  const delta = new Map<number, number>();
  for (const [le, count] of after) delta.set(le, count - (before.get(le) ?? 0));
  return delta;
}

/**
 * The q-quantile of a cumulative histogram, interpolated linearly inside its bucket (as
 * Prometheus' histogram_quantile does): as precise as the API server's buckets allow.
 */
export function quantile(buckets: Map<number, number>, q: number): number {
  const bounds = [...buckets.keys()].sort((a, b) => a - b);
  const total = buckets.get(Number.POSITIVE_INFINITY) ?? 0;
  if (total === 0) return Number.NaN;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const le of bounds) {
    const count = buckets.get(le) ?? 0;
    if (count >= rank) {
      if (le === Number.POSITIVE_INFINITY) return lower;
      return lower + ((le - lower) * (rank - below)) / Math.max(count - below, 1);
    }
    lower = le;
    below = count;
  }
  return lower;
}
