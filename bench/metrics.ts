// Prometheus text parsing and the two counters the benchmark is judged by: the API server's
// apiserver_request_total (every client's requests, by verb and resource) and the operator's
// own regcred_api_writes_total. Parsing is test/support/operator.ts's parseMetrics.
import { type MetricSample, metricSum, parseMetrics } from '../test/support/operator.ts';

export { parseMetrics };

/** metricSum, 0 when there is no such sample. */
export function sumOf(
  samples: readonly MetricSample[],
  name: string,
  labels: Record<string, string> = {},
): number {
  return metricSum(samples, name, labels) ?? 0;
}

/** Request counts keyed `VERB resource[/subresource]`, e.g. `PUT serviceaccounts`. */
export type RequestCounts = Record<string, number>;

export const MUTATING_VERBS: readonly string[] = ['POST', 'PUT', 'PATCH', 'DELETE', 'APPLY'];
export const READ_VERBS: readonly string[] = ['GET', 'LIST'];

/** apiserver_request_total summed by verb and resource (non-resource URLs such as /metrics dropped). */
export function apiServerRequests(metricsText: string): RequestCounts {
  const counts: RequestCounts = {};
  for (const s of parseMetrics(metricsText, new Set(['apiserver_request_total']))) {
    const resource = s.labels.resource ?? '';
    if (resource === '') continue;
    const sub = s.labels.subresource ? `/${s.labels.subresource}` : '';
    const key = `${s.labels.verb ?? '?'} ${resource}${sub}`;
    counts[key] = (counts[key] ?? 0) + s.value;
  }
  return counts;
}

/** after − before, keeping only the keys that moved. */
export function countsDelta(after: RequestCounts, before: RequestCounts): RequestCounts {
  const delta: RequestCounts = {};
  for (const [key, value] of Object.entries(after)) {
    const d = value - (before[key] ?? 0);
    if (d !== 0) delta[key] = d;
  }
  return Object.fromEntries(Object.entries(delta).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/**
 * `counts` minus the requests the harness itself made (and the cluster made in reaction),
 * so what is left is the operator's. A negative count means an expected request did not happen.
 */
export function withoutHarness(counts: RequestCounts, harness: RequestCounts): RequestCounts {
  const net: RequestCounts = { ...counts };
  for (const [key, value] of Object.entries(harness)) {
    const left = (net[key] ?? 0) - value;
    if (left === 0) delete net[key];
    else net[key] = left;
  }
  return net;
}

/** The sum of the counts whose verb is in `verbs` and whose resource (without subresource) is in `resources`. */
export function countWhere(
  counts: RequestCounts,
  verbs: readonly string[],
  resources: readonly string[],
): number {
  let total = 0;
  for (const [key, value] of Object.entries(counts)) {
    const [verb = '', path = ''] = key.split(' ');
    const resource = path.split('/')[0] ?? '';
    if (verbs.includes(verb) && resources.includes(resource)) total += value;
  }
  return total;
}

/** The operator's regcred_api_writes_total by `verb resource` (its own verbs: create, update, patch, delete). */
export function operatorWrites(metricsText: string): RequestCounts {
  const counts: RequestCounts = {};
  for (const s of parseMetrics(metricsText, new Set(['regcred_api_writes_total']))) {
    const key = `${s.labels.verb ?? '?'} ${s.labels.resource ?? '?'}`;
    counts[key] = (counts[key] ?? 0) + s.value;
  }
  return counts;
}

/** The operator's regcred_api_requests_total (reads included) by `verb resource`, all codes. */
export function operatorRequests(metricsText: string): RequestCounts {
  const counts: RequestCounts = {};
  for (const s of parseMetrics(metricsText, new Set(['regcred_api_requests_total']))) {
    const key = `${s.labels.verb ?? '?'} ${s.labels.resource ?? '?'}`;
    counts[key] = (counts[key] ?? 0) + s.value;
  }
  return counts;
}
