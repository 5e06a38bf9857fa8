// Slightly over 400 lines on purpose: every rule about which Secret may be read, and how, is
// kept in this one file so a review of the source policy reads one place.
// Turns a RegistryCredential's registries into one set of auths entries, reading source
// Secrets from the cache. Where a source Secret may come from is decided here and only here:
// a secretRef may name another namespace only if the operator was started allowing it.
import { createHash } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import { parseDuration } from '../api/duration.ts';
import {
  REFRESH_REQUESTED_ANNOTATION,
  type Registry,
  type RegistryCredential,
  type RegistryStatus,
  type SecretReference,
  SOURCE_KINDS_ANNOTATION,
  SOURCE_LABEL,
  SOURCE_LABEL_VALUE,
  type SourceKind,
} from '../api/types.ts';
import { secretValues } from '../observability/redact.ts';
import type { CloudEndpoints, CloudToken, CloudTokenInput } from './cloud/cloud-token.ts';
import { decodeSecretData } from './cloud/secret-data.ts';
import { basicAuthEntry, type DockerAuthEntry } from './dockerconfigjson.ts';
import { CredentialError } from './errors.ts';
import { assertDistinctServers, shadowedKeys } from './registry-keys.ts';
import { mergeRegistryAuths, resolveBasic, resolveDockerConfig } from './static-sources.ts';
import type { TokenCache, TokenCacheKey } from './token-cache.ts';

export interface SourceSecrets {
  /** A Secret in a watched source namespace, or undefined if it does not exist. */
  sourceSecret(namespace: string, name: string): V1Secret | undefined;
}

export interface SourcePolicy {
  operatorNamespace: string;
  allowedSourceNamespaces: ReadonlySet<string>;
}

export interface ResolvedCredentials {
  entries: Map<string, DockerAuthEntry>;
  registries: RegistryStatus[];
}

export function sourceKind(
  registry: RegistryCredential['spec']['registries'][number],
): SourceKind | undefined {
  if (registry.basic) return 'basic';
  if (registry.dockerConfig) return 'dockerConfig';
  if (registry.ecr) return 'ecr';
  if (registry.gcp) return 'gcp';
  if (registry.acr) return 'acr';
  return undefined;
}

/** The namespace/name a reference points at, after the policy check. */
export function sourceLocation(
  ref: SecretReference,
  policy: SourcePolicy,
  field: string,
): { namespace: string; name: string } {
  const namespace = ref.namespace ?? policy.operatorNamespace;
  if (!policy.allowedSourceNamespaces.has(namespace)) {
    throw new CredentialError(
      'SourceForbidden',
      `${field}: namespace ${namespace} is not an allowed source namespace (allowed: ${[...policy.allowedSourceNamespaces].join(', ')})`,
    );
  }
  return { namespace, name: ref.name };
}

/**
 * Refuses a Secret that did not opt in as a source: writing a RegistryCredential must not let
 * its author copy any Secret of a source namespace (keys kept there for something else, the
 * operator's own token state).
 */
function assertOptedIn(secret: V1Secret, field: string): void {
  if (secret.metadata?.labels?.[SOURCE_LABEL] === SOURCE_LABEL_VALUE) return;
  const namespace = secret.metadata?.namespace ?? '';
  const name = secret.metadata?.name ?? '';
  throw new CredentialError(
    'SourceForbidden',
    `${field}: Secret ${namespace}/${name} is not labelled ${SOURCE_LABEL}: "${SOURCE_LABEL_VALUE}"; ` +
      `label it to use it as a source (kubectl label secret -n ${namespace} ${name} ${SOURCE_LABEL}=${SOURCE_LABEL_VALUE})`,
  );
}

/** Refuses a Secret whose `regcred.dev/source-kinds` does not list the kind reading it. */
function assertKindAllowed(secret: V1Secret, kind: SourceKind, field: string): void {
  const listed = secret.metadata?.annotations?.[SOURCE_KINDS_ANNOTATION];
  if (listed === undefined) return;
  const kinds = listed
    .split(',')
    .map((k) => k.trim())
    .filter((k) => k !== '');
  if (kinds.includes(kind)) return;
  throw new CredentialError(
    'SourceForbidden',
    `${field}: Secret ${secret.metadata?.namespace ?? ''}/${secret.metadata?.name ?? ''} may be read only by ${kinds.join(', ') || 'no'} sources (${SOURCE_KINDS_ANNOTATION}), not ${kind}`,
  );
}

function readSource(
  ref: SecretReference,
  cache: SourceSecrets,
  policy: SourcePolicy,
  field: string,
  kind: SourceKind,
): V1Secret {
  const { namespace, name } = sourceLocation(ref, policy, field);
  const secret = cache.sourceSecret(namespace, name);
  if (!secret)
    throw new CredentialError('SourceNotFound', `${field}: Secret ${namespace}/${name} not found`);
  assertOptedIn(secret, field);
  assertKindAllowed(secret, kind, field);
  return secret;
}

/** Every Secret reference of one registry, with the field path that names it. */
function secretRefsOf(registry: Registry): Array<{ ref: SecretReference; path: string }> {
  const refs: Array<[SecretReference | undefined, string]> = [
    [registry.basic?.secretRef, 'basic.secretRef'],
    [registry.dockerConfig?.secretRef, 'dockerConfig.secretRef'],
    [registry.ecr?.credentialsSecretRef, 'ecr.credentialsSecretRef'],
    [registry.gcp?.serviceAccountKeySecretRef, 'gcp.serviceAccountKeySecretRef'],
    [registry.acr?.clientSecretRef, 'acr.clientSecretRef'],
  ];
  return refs.flatMap(([ref, path]) => (ref ? [{ ref, path }] : []));
}

/**
 * Forbidden sources are refused before anything is read, for every registry (cloud ones
 * included): a forbidden source is reported even when another one is also missing.
 */
function assertSourcesAllowed(
  registries: readonly Registry[],
  cache: SourceSecrets,
  policy: SourcePolicy,
): void {
  registries.forEach((registry, i) => {
    for (const { ref, path } of secretRefsOf(registry)) {
      const field = `spec.registries[${i}].${path}`;
      const { namespace, name } = sourceLocation(ref, policy, field);
      const secret = cache.sourceSecret(namespace, name);
      if (secret) assertOptedIn(secret, field);
    }
  });
}

/** Explicit servers the kubelet would fold into one key are refused before any source is read. */
function assertDistinctExplicitServers(registries: readonly Registry[]): void {
  assertDistinctServers(
    registries.flatMap((registry, i) =>
      registry.server !== undefined && !registry.dockerConfig
        ? [{ field: `spec.registries[${i}]`, server: registry.server }]
        : [],
    ),
  );
}

/** Every Secret the credential reads, for mapping source-Secret events back to credentials. */
export function referencedSecrets(
  cred: RegistryCredential,
  operatorNamespace: string,
): Array<{ namespace: string; name: string }> {
  return (cred.spec.registries ?? []).flatMap((registry) =>
    secretRefsOf(registry).map(({ ref }) => ({
      namespace: ref.namespace ?? operatorNamespace,
      name: ref.name,
    })),
  );
}

/**
 * Resolves the static sources (basic, dockerConfig); cloud registries are left to
 * resolveCredentials but count as explicit servers. Throws CredentialError carrying the first
 * failure's reason, forbidden sources and colliding servers first. An imported key the kubelet
 * would fold into another registry's key is left out and reported `shadowed`: explicit
 * servers win over imports, and a later import over an earlier one.
 */
export function resolveStaticCredentials(
  cred: RegistryCredential,
  cache: SourceSecrets,
  policy: SourcePolicy,
): ResolvedCredentials {
  const registries = cred.spec.registries ?? [];
  assertSourcesAllowed(registries, cache, policy);
  assertDistinctExplicitServers(registries);
  const resolvedParts: Array<{ index: number; entries: Map<string, DockerAuthEntry> }> = [];
  registries.forEach((registry, i) => {
    const field = `spec.registries[${i}]`;
    const kind = sourceKind(registry);
    if (registry.basic) {
      const server = registry.server;
      if (!server)
        throw new CredentialError('InvalidSpec', `${field}.server is required with basic`);
      const secret = readSource(
        registry.basic.secretRef,
        cache,
        policy,
        `${field}.basic.secretRef`,
        'basic',
      );
      resolvedParts.push({ index: i, entries: resolveBasic(registry.basic, secret, server) });
    } else if (registry.dockerConfig) {
      const secret = readSource(
        registry.dockerConfig.secretRef,
        cache,
        policy,
        `${field}.dockerConfig.secretRef`,
        'dockerConfig',
      );
      resolvedParts.push({ index: i, entries: resolveDockerConfig(secret) });
    } else if (!kind) {
      throw new CredentialError(
        'InvalidSpec',
        `${field}: exactly one of basic, dockerConfig, ecr, gcp, acr is required`,
      );
    }
  });
  const imported = new Map(
    resolvedParts
      .filter((part) => registries[part.index]?.dockerConfig)
      .map((part) => [part.index, [...part.entries.keys()]]),
  );
  const shadowed = shadowedKeys(registries, imported);
  const parts: Array<Map<string, DockerAuthEntry>> = [];
  const statuses: RegistryStatus[] = [];
  for (const { index, entries } of resolvedParts) {
    const registry = registries[index];
    if (registry?.basic && registry.server) {
      parts.push(entries);
      statuses.push({ server: registry.server, source: 'basic' });
      continue;
    }
    const left = shadowed.get(index);
    const kept = new Map([...entries].filter(([server]) => !left?.has(server)));
    parts.push(kept);
    for (const server of [...entries.keys()].sort()) {
      statuses.push(
        left?.has(server)
          ? { server, source: 'dockerConfig', shadowed: true }
          : { server, source: 'dockerConfig' },
      );
    }
  }
  return { entries: mergeRegistryAuths(parts), registries: statuses };
}

export interface CloudResolution {
  tokens: TokenCache;
  now: Date;
  endpoints?: CloudEndpoints;
  /** Called for every cloud call, for metrics; `detail` is what the cloud SDK said (scrubbed),
   * for the debug log only. */
  onRefresh?: (source: 'ecr' | 'gcp' | 'acr', ok: boolean, error?: string, detail?: string) => void;
  /**
   * The auths this credential last wrote (one of its managed Secrets), to adopt tokens from
   * after a restart. A function: it is read only when a cloud token is not cached yet, and
   * finding it walks the managed Secrets.
   */
  written?: () => ReadonlyMap<string, DockerAuthEntry> | undefined;
}

export interface ResolvedWithTokens extends ResolvedCredentials {
  /** Cloud registries whose latest refresh failed (their last good token may still be served). */
  refreshErrors: CredentialError[];
  /** The earliest moment a token must be refreshed or retried; undefined without cloud sources. */
  nextAttemptAt?: Date;
  /** Cloud registries whose token expired with no new one: dropped from the Secret. */
  expiredServers: string[];
}

const FETCHERS: Record<'ecr' | 'gcp' | 'acr', (input: CloudTokenInput) => Promise<CloudToken>> = {
  // Loaded on first use: the SDKs cost ~22 MB of memory where no cloud registry is configured.
  ecr: async (input) => (await import('./cloud/ecr.ts')).fetchEcrToken(input),
  gcp: async (input) => (await import('./cloud/gcp.ts')).fetchGcpToken(input),
  acr: async (input) => (await import('./cloud/acr.ts')).fetchAcrToken(input),
};

function cloudSecretRef(registry: Registry): { ref: SecretReference; path: string } | undefined {
  if (registry.ecr?.credentialsSecretRef)
    return { ref: registry.ecr.credentialsSecretRef, path: 'ecr.credentialsSecretRef' };
  if (registry.gcp?.serviceAccountKeySecretRef) {
    return { ref: registry.gcp.serviceAccountKeySecretRef, path: 'gcp.serviceAccountKeySecretRef' };
  }
  if (registry.acr?.clientSecretRef)
    return { ref: registry.acr.clientSecretRef, path: 'acr.clientSecretRef' };
  return undefined;
}

/**
 * Resolves every registry: static sources from the cache, cloud sources through the token
 * cache (one cloud call per refresh, whatever the number of namespaces). A static source that
 * fails fails the whole credential (nothing is written, the last good Secrets stay). A cloud
 * registry whose refresh fails keeps its last good token until it expires, then drops out of
 * the Secret; both are reported in `refreshErrors`.
 */
export async function resolveCredentials(
  cred: RegistryCredential,
  cache: SourceSecrets,
  policy: SourcePolicy,
  cloud: CloudResolution,
): Promise<ResolvedWithTokens> {
  const registries = cred.spec.registries ?? [];
  const resolvedStatic = resolveStaticCredentials(cred, cache, policy);
  const parts: Array<Map<string, DockerAuthEntry>> = [resolvedStatic.entries];
  const statuses: RegistryStatus[] = [...resolvedStatic.registries];
  const refreshErrors: CredentialError[] = [];
  let nextAttemptAt: Date | undefined;
  const refreshIntervalMs = cred.spec.refreshInterval
    ? parseDuration(cred.spec.refreshInterval)
    : undefined;
  const forceToken = cred.metadata.annotations?.[REFRESH_REQUESTED_ANNOTATION];
  // The value status says was acted on, whoever led then: any other value is a new request.
  const actedToken = cred.status?.lastRefreshRequest;
  const keys: TokenCacheKey[] = [];
  const expiredServers: string[] = [];

  for (const [i, registry] of registries.entries()) {
    const kind = sourceKind(registry);
    if (kind !== 'ecr' && kind !== 'gcp' && kind !== 'acr') continue;
    const field = `spec.registries[${i}]`;
    const server = registry.server;
    if (!server)
      throw new CredentialError('InvalidSpec', `${field}.server is required with ${kind}`);
    const secretRef = cloudSecretRef(registry);
    let secretData: Record<string, string> | undefined;
    let secretName: string | undefined;
    let secretVersion = '';
    if (secretRef) {
      const secret = readSource(secretRef.ref, cache, policy, `${field}.${secretRef.path}`, kind);
      secretData = decodeSecretData(secret);
      secretValues.add(...Object.values(secretData));
      secretName = `${secret.metadata?.namespace}/${secret.metadata?.name}`;
      secretVersion = secret.metadata?.resourceVersion ?? '';
    }
    const key: TokenCacheKey = {
      credentialUid: cred.metadata.uid ?? cred.metadata.name ?? '',
      index: i,
      server,
      fingerprint: createHash('sha256')
        .update(JSON.stringify(registry))
        .update(secretVersion)
        .digest('hex'),
    };
    keys.push(key);
    adoptWrittenToken(cred, key, cloud, actedToken);
    const lookup = await cloud.tokens.get(
      key,
      async (signal) => {
        try {
          const token = await FETCHERS[kind]({
            registry,
            ...(secretData ? { secretData } : {}),
            ...(secretName ? { secretName } : {}),
            ...(cloud.endpoints ? { endpoints: cloud.endpoints } : {}),
            signal,
          });
          cloud.onRefresh?.(kind, true);
          return token;
        } catch (error) {
          cloud.onRefresh?.(
            kind,
            false,
            error instanceof Error ? error.message : String(error),
            error instanceof CredentialError ? error.detail : undefined,
          );
          throw error;
        }
      },
      cloud.now,
      {
        ...(forceToken !== undefined ? { forceToken } : {}),
        actedToken,
        ...(refreshIntervalMs ? { refreshIntervalMs } : {}),
      },
    );
    if (!nextAttemptAt || lookup.nextAttemptAt < nextAttemptAt)
      nextAttemptAt = lookup.nextAttemptAt;
    const status: RegistryStatus = { server, source: kind };
    if (lookup.refreshedAt)
      status.refreshedAt = lookup.refreshedAt.toISOString().replace(/\.\d+Z$/, 'Z');
    if (lookup.expiresAt) status.expiresAt = lookup.expiresAt.toISOString().replace(/\.\d+Z$/, 'Z');
    statuses.push(status);
    if (lookup.token && !lookup.expired) {
      // basicAuthEntry registers the token, `user:token` and its base64 (ACR's `auth`).
      parts.push(new Map([[server, basicAuthEntry(lookup.token.username, lookup.token.password)]]));
    }
    if (lookup.expired) expiredServers.push(server);
    if (lookup.error) {
      const until =
        lookup.token && !lookup.expired && lookup.expiresAt
          ? `; serving the last good token until it expires at ${lookup.expiresAt.toISOString()}`
          : lookup.expired
            ? '; its last token has expired and it was removed from the Secret'
            : '';
      refreshErrors.push(
        new CredentialError(
          lookup.error.reason === 'RefreshFailed' ? 'RefreshFailed' : lookup.error.reason,
          `${field} (${server}): ${lookup.error.message}${until}`,
        ),
      );
    }
  }
  cloud.tokens.retainOnly(cred.metadata.uid ?? cred.metadata.name ?? '', keys);
  return {
    entries: mergeRegistryAuths(parts),
    registries: statuses,
    refreshErrors,
    expiredServers,
    ...(nextAttemptAt ? { nextAttemptAt } : {}),
  };
}

/** After a restart the token cache is empty: reuse the unexpired token we wrote last time. */
function adoptWrittenToken(
  cred: RegistryCredential,
  key: TokenCacheKey,
  cloud: CloudResolution,
  actedToken: string | undefined,
): void {
  if (cloud.tokens.knows(key)) return;
  // The cloud registry's own entry: an import of the same key is listed too (shadowed).
  const previous = cred.status?.registries?.find(
    (r) => r.server === key.server && r.source !== 'dockerConfig',
  );
  if (!previous?.expiresAt || !previous.refreshedAt) return;
  const entry = cloud.written?.()?.get(key.server);
  if (!entry?.username || !entry.password) return;
  const expiresAt = new Date(previous.expiresAt);
  const refreshedAt = new Date(previous.refreshedAt);
  if (Number.isNaN(expiresAt.getTime()) || Number.isNaN(refreshedAt.getTime())) return;
  cloud.tokens.seed(
    key,
    { username: entry.username, password: entry.password, expiresAt },
    refreshedAt,
    cloud.now,
    actedToken,
  );
}
