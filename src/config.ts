// Operator options: every flag has an environment variable, flags win, and everything is
// validated before anything starts.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseDuration } from './api/duration.ts';
import type { CloudEndpoints } from './credentials/cloud/cloud-token.ts';
import { LOG_LEVELS, type LogLevel } from './observability/logger.ts';

/**
 * Endpoint overrides for the cloud SDKs, from the environment only. The AWS SDK reads
 * AWS_ENDPOINT_URL_ECR / AWS_ENDPOINT_URL_STS and Google's GCE_METADATA_HOST itself; these
 * cover what the SDKs can't be told by environment.
 */
export const CLOUD_ENDPOINT_ENV = {
  gcpTokenUrl: 'REGCRED_GCP_TOKEN_URL',
  gcpAllowLoopbackUrls: 'REGCRED_GCP_ALLOW_LOOPBACK_URLS',
  azureAuthorityHost: 'REGCRED_AZURE_AUTHORITY_HOST',
  acrExchangeUrl: 'REGCRED_ACR_EXCHANGE_URL',
  tlsCaFile: 'REGCRED_CLOUD_CA_FILE',
} as const;

function cloudEndpoints(env: NodeJS.ProcessEnv): CloudEndpoints {
  const out: CloudEndpoints = {};
  const e = CLOUD_ENDPOINT_ENV;
  if (env[e.gcpTokenUrl]) out.gcpTokenUrl = env[e.gcpTokenUrl];
  if (env[e.gcpAllowLoopbackUrls] === 'true') out.gcpAllowLoopbackUrls = true;
  if (env[e.azureAuthorityHost]) out.azureAuthorityHost = env[e.azureAuthorityHost];
  const template = env[e.acrExchangeUrl];
  if (template) {
    if (!template.includes('{host}')) {
      throw new ConfigError(
        `${e.acrExchangeUrl} must contain {host}, got ${JSON.stringify(template)}`,
      );
    }
    out.acrExchangeUrlFor = (host) => template.replaceAll('{host}', host);
  }
  const caFile = env[e.tlsCaFile];
  if (caFile) {
    try {
      out.tlsCa = readFileSync(caFile, 'utf8');
    } catch (error) {
      throw new ConfigError(
        `${e.tlsCaFile}: cannot read ${caFile}: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }
  return out;
}

export interface OperatorConfig {
  /** Path to a kubeconfig; absent: in-cluster config, then ~/.kube/config. */
  kubeconfig?: string;
  /** The operator's own namespace: where source Secrets without a namespace are read. */
  namespace: string;
  /** Namespaces source Secrets may be read from; always includes `namespace`. */
  sourceNamespaces: string[];
  /** RegistryCredentials reconciled at once. */
  workers: number;
  /**
   * Namespace writes in flight at once for one RegistryCredential's fan-out, and the workers
   * of the single-namespace queue (new or drifted namespaces).
   */
  fanoutConcurrency: number;
  logLevel: LogLevel;
  /** host:port for /metrics; empty string disables. */
  metricsAddress: string;
  /** host:port for /healthz and /readyz; empty string disables. */
  healthAddress: string;
  leaderElect: boolean;
  leaseName: string;
  /** Identity in the Lease; defaults to the hostname (the Pod name in a cluster). */
  identity: string;
  /** /healthz fails once an informer has been failing without a break for this long. */
  informerUnhealthyAfterMs: number;
  /**
   * How often every informer replays its cache to the controller (client-go's resync), so a
   * missed event is caught up from the cache; 0 disables. Nothing is read from the API server.
   */
  informerResyncMs: number;
  /** Cloud endpoint overrides (air-gapped mirrors, tests); empty in a normal install. */
  cloudEndpoints: CloudEndpoints;
  /** The Pod admission webhook; absent when --pod-webhook-address is empty (the default). */
  podWebhook?: PodWebhookConfig;
  /**
   * Evict Pods stuck in ErrImagePull / ImagePullBackOff for want of a credential's Secret, so
   * their controller recreates them with it. Off: such Pods only get an Event (when the Pod
   * webhook is enabled, which watches Pods for it).
   */
  evictStuckPods: boolean;
}

export interface PodWebhookConfig {
  /** host:port the HTTPS endpoint listens on. */
  address: string;
  /** Serve tls.crt/tls.key from this directory (cert-manager); empty: the operator's own CA. */
  certDir: string;
  /** The Secret in the operator's namespace holding the operator's CA and serving pair. */
  certSecret: string;
  /** The MutatingWebhookConfiguration whose caBundle the operator keeps; "" leaves it alone. */
  configurationName: string;
  /** DNS names and IPs the serving certificate is valid for. */
  hosts: string[];
  caLifetimeMs: number;
  certLifetimeMs: number;
}

interface OptionSpec {
  env: string;
  description: string;
  default?: string;
  type: 'string' | 'boolean';
}

export const OPTIONS: Record<string, OptionSpec> = {
  kubeconfig: {
    env: 'KUBECONFIG',
    type: 'string',
    description: 'kubeconfig path (default: in-cluster, then ~/.kube/config)',
  },
  namespace: {
    env: 'REGCRED_NAMESPACE',
    type: 'string',
    description:
      "the operator's namespace (default: POD_NAMESPACE, the service account's namespace, or regcred-system)",
  },
  'source-namespaces': {
    env: 'REGCRED_SOURCE_NAMESPACES',
    type: 'string',
    description:
      'comma-separated namespaces source Secrets may be read from, besides the own namespace',
  },
  workers: {
    env: 'REGCRED_WORKERS',
    type: 'string',
    default: '4',
    description: 'RegistryCredentials reconciled concurrently',
  },
  'fanout-concurrency': {
    env: 'REGCRED_FANOUT_CONCURRENCY',
    type: 'string',
    default: '16',
    description:
      'namespace writes in flight per RegistryCredential reconcile, and single namespaces (new, or drifted) synced at once',
  },
  'log-level': {
    env: 'REGCRED_LOG_LEVEL',
    type: 'string',
    default: 'info',
    description: 'error, warn, info or debug',
  },
  'metrics-address': {
    env: 'REGCRED_METRICS_ADDRESS',
    type: 'string',
    default: ':8080',
    description: 'listen address for /metrics ("" disables)',
  },
  'health-address': {
    env: 'REGCRED_HEALTH_ADDRESS',
    type: 'string',
    default: ':8081',
    description: 'listen address for /healthz and /readyz ("" disables)',
  },
  'leader-elect': {
    env: 'REGCRED_LEADER_ELECT',
    type: 'boolean',
    default: 'true',
    description: 'elect a leader on a Lease so only one replica writes (false for local runs)',
  },
  'lease-name': {
    env: 'REGCRED_LEASE_NAME',
    type: 'string',
    default: 'regcred-operator',
    description: 'name of the leader-election Lease',
  },
  identity: {
    env: 'REGCRED_IDENTITY',
    type: 'string',
    description: 'holder identity in the Lease (default: hostname)',
  },
  'informer-unhealthy-after': {
    env: 'REGCRED_INFORMER_UNHEALTHY_AFTER',
    type: 'string',
    default: '60s',
    description:
      '/healthz reports, in its body and still 200, a watch or the API server failing this long (Go duration; ADR 0007)',
  },
  'pod-webhook-address': {
    env: 'REGCRED_POD_WEBHOOK_ADDRESS',
    type: 'string',
    default: '',
    description:
      'listen address of the Pod admission webhook, e.g. :9443 ("" disables; see config/webhook)',
  },
  'pod-webhook-service': {
    env: 'REGCRED_POD_WEBHOOK_SERVICE',
    type: 'string',
    default: 'regcred-operator-webhook',
    description: "the webhook's Service in the operator's namespace (names in its certificate)",
  },
  'pod-webhook-hosts': {
    env: 'REGCRED_POD_WEBHOOK_HOSTS',
    type: 'string',
    default: '',
    description: 'comma-separated extra DNS names or IPs for the serving certificate',
  },
  'pod-webhook-configuration': {
    env: 'REGCRED_POD_WEBHOOK_CONFIGURATION',
    type: 'string',
    default: 'regcred-operator-pod-webhook',
    description:
      'the MutatingWebhookConfiguration whose caBundle the operator keeps current ("" leaves it alone)',
  },
  'pod-webhook-cert-secret': {
    env: 'REGCRED_POD_WEBHOOK_CERT_SECRET',
    type: 'string',
    default: 'regcred-operator-webhook-tls',
    description: "the Secret in the operator's namespace holding its webhook CA and certificate",
  },
  'pod-webhook-cert-dir': {
    env: 'REGCRED_POD_WEBHOOK_CERT_DIR',
    type: 'string',
    default: '',
    description:
      'serve tls.crt and tls.key from this directory instead (cert-manager); no CA, Secret or caBundle is managed',
  },
  'pod-webhook-cert-lifetime': {
    env: 'REGCRED_POD_WEBHOOK_CERT_LIFETIME',
    type: 'string',
    default: '720h',
    description: 'lifetime of the serving certificate, renewed at two thirds (Go duration)',
  },
  'pod-webhook-ca-lifetime': {
    env: 'REGCRED_POD_WEBHOOK_CA_LIFETIME',
    type: 'string',
    default: '8760h',
    description: 'lifetime of the webhook CA, renewed at two thirds (Go duration)',
  },
  'evict-stuck-pods': {
    env: 'REGCRED_EVICT_STUCK_PODS',
    type: 'boolean',
    default: 'false',
    description:
      "evict controller-owned Pods stuck pulling for want of a credential's Secret (Eviction API, PDBs respected)",
  },
  'informer-resync': {
    env: 'REGCRED_INFORMER_RESYNC',
    type: 'string',
    default: '10m',
    description:
      'how often every cache is replayed to the controller to re-check each object, without asking the API server (Go duration; 0 disables)',
  },
};

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function usage(): string {
  const lines = [
    'Usage: regcred-operator [flags]',
    '',
    'Every flag can also be set by its environment variable; a flag wins.',
    '',
  ];
  for (const [name, spec] of Object.entries(OPTIONS)) {
    const flag = spec.type === 'boolean' ? `--${name}[=false]` : `--${name} <value>`;
    const def = spec.default !== undefined ? ` (default ${JSON.stringify(spec.default)})` : '';
    lines.push(`  ${flag.padEnd(34)} ${spec.env.padEnd(28)} ${spec.description}${def}`);
  }
  lines.push(`  ${'--help'.padEnd(34)} ${''.padEnd(28)} this text`);
  return lines.join('\n');
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const SERVICE_ACCOUNT_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

function positiveInt(name: string, raw: string, max: number): number {
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new ConfigError(
      `--${name} must be a whole number from 1 to ${max}, got ${JSON.stringify(raw)}`,
    );
  }
  return value;
}

function duration(name: string, raw: string): number {
  try {
    const ms = parseDuration(raw);
    if (ms >= 1000) return ms;
  } catch {
    // reported below
  }
  throw new ConfigError(
    `--${name} must be a duration of at least 1s such as 30s or 2m, got ${JSON.stringify(raw)}`,
  );
}

/** --informer-resync: a duration of at least 1s, or 0 (no resync). */
function resync(raw: string): number {
  try {
    const ms = parseDuration(raw);
    if (ms === 0 || ms >= 1000) return ms;
  } catch {
    // reported below
  }
  throw new ConfigError(
    `--informer-resync must be 0 (off) or a duration of at least 1s such as 30s or 10m, got ${JSON.stringify(raw)}`,
  );
}

function address(name: string, raw: string): string {
  if (raw === '' || /^(\[[0-9a-fA-F:]+\]|[^:]*):\d{1,5}$/.test(raw)) return raw;
  throw new ConfigError(
    `--${name} must be host:port or :port (or "" to disable), got ${JSON.stringify(raw)}`,
  );
}

function defaultNamespace(env: NodeJS.ProcessEnv): string {
  if (env.POD_NAMESPACE) return env.POD_NAMESPACE;
  try {
    return readFileSync(SERVICE_ACCOUNT_NAMESPACE_FILE, 'utf8').trim();
  } catch {
    return 'regcred-system';
  }
}

/** Parses argv and env; throws ConfigError with a message naming the bad flag. */
export function loadConfig(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  hostname = 'regcred-operator',
): OperatorConfig | 'help' {
  const options: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' } };
  for (const [name, spec] of Object.entries(OPTIONS))
    options[name] = { type: spec.type === 'boolean' ? 'string' : 'string' };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: false, strict: true });
  } catch (error) {
    throw new ConfigError(error instanceof Error ? error.message : String(error));
  }
  if (parsed.values.help === true) return 'help';
  const value = (name: string): string | undefined => {
    const flag = parsed.values[name];
    if (typeof flag === 'string') return flag;
    const spec = OPTIONS[name];
    if (spec && env[spec.env] !== undefined) return env[spec.env];
    return spec?.default;
  };
  const bool = (name: string): boolean => {
    const raw = (value(name) ?? 'false').toLowerCase();
    if (['true', '1', 'yes', ''].includes(raw)) return true;
    if (['false', '0', 'no'].includes(raw)) return false;
    throw new ConfigError(`--${name} must be true or false, got ${JSON.stringify(raw)}`);
  };

  const namespace = value('namespace') ?? defaultNamespace(env);
  if (!DNS_LABEL.test(namespace))
    throw new ConfigError(`--namespace ${JSON.stringify(namespace)} is not a valid namespace name`);
  const extra = (value('source-namespaces') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const ns of extra) {
    if (!DNS_LABEL.test(ns))
      throw new ConfigError(
        `--source-namespaces: ${JSON.stringify(ns)} is not a valid namespace name`,
      );
  }
  const logLevel = value('log-level') ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError(
      `--log-level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`,
    );
  }
  const kubeconfig = value('kubeconfig');
  return {
    ...(kubeconfig ? { kubeconfig } : {}),
    namespace,
    sourceNamespaces: [...new Set([namespace, ...extra])].sort(),
    workers: positiveInt('workers', value('workers') ?? '4', 64),
    fanoutConcurrency: positiveInt('fanout-concurrency', value('fanout-concurrency') ?? '16', 256),
    logLevel: logLevel as LogLevel,
    metricsAddress: address('metrics-address', value('metrics-address') ?? ''),
    healthAddress: address('health-address', value('health-address') ?? ''),
    leaderElect: bool('leader-elect'),
    leaseName: value('lease-name') ?? 'regcred-operator',
    identity: value('identity') ?? hostname,
    informerUnhealthyAfterMs: duration(
      'informer-unhealthy-after',
      value('informer-unhealthy-after') ?? '60s',
    ),
    informerResyncMs: resync(value('informer-resync') ?? '10m'),
    cloudEndpoints: cloudEndpoints(env),
    ...podWebhook(value, namespace),
    evictStuckPods: bool('evict-stuck-pods'),
  };
}

function podWebhook(
  value: (name: string) => string | undefined,
  namespace: string,
): { podWebhook?: PodWebhookConfig } {
  const listen = address('pod-webhook-address', value('pod-webhook-address') ?? '');
  if (listen === '') return {};
  const service = value('pod-webhook-service') ?? 'regcred-operator-webhook';
  if (!DNS_LABEL.test(service)) {
    throw new ConfigError(`--pod-webhook-service ${JSON.stringify(service)} is not a valid name`);
  }
  const extra = (value('pod-webhook-hosts') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const host of extra) {
    if (!/^[A-Za-z0-9.:-]+$/.test(host)) {
      throw new ConfigError(
        `--pod-webhook-hosts: ${JSON.stringify(host)} is not a host name or IP`,
      );
    }
  }
  const certSecret = value('pod-webhook-cert-secret') ?? 'regcred-operator-webhook-tls';
  if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(certSecret)) {
    throw new ConfigError(
      `--pod-webhook-cert-secret ${JSON.stringify(certSecret)} is not a valid name`,
    );
  }
  const certLifetimeMs = duration(
    'pod-webhook-cert-lifetime',
    value('pod-webhook-cert-lifetime') ?? '720h',
  );
  const caLifetimeMs = duration(
    'pod-webhook-ca-lifetime',
    value('pod-webhook-ca-lifetime') ?? '8760h',
  );
  if (caLifetimeMs < certLifetimeMs) {
    throw new ConfigError(
      '--pod-webhook-ca-lifetime must not be shorter than --pod-webhook-cert-lifetime',
    );
  }
  return {
    podWebhook: {
      address: listen,
      certDir: value('pod-webhook-cert-dir') ?? '',
      certSecret,
      configurationName: value('pod-webhook-configuration') ?? 'regcred-operator-pod-webhook',
      hosts: [
        ...new Set([
          `${service}.${namespace}.svc`,
          `${service}.${namespace}.svc.cluster.local`,
          ...extra,
        ]),
      ],
      caLifetimeMs,
      certLifetimeMs,
    },
  };
}
