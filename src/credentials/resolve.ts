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
  type SourceKind,
} from '../api/types.ts';
import { secretValues } from '../observability/redact.ts';
import type { CloudEndpoints, CloudToken, CloudTokenInput } from './cloud/cloud-token.ts';
import { decodeSecretData } from './cloud/secret-data.ts';
import { basicAuthEntry, type DockerAuthEntry } from './dockerconfigjson.ts';
import { CredentialError } from './errors.ts';
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

function readSource(
  ref: SecretReference,
  cache: SourceSecrets,
  policy: SourcePolicy,
  field: string,
): V1Secret {
  const { namespace, name } = sourceLocation(ref, policy, field);
  const secret = cache.sourceSecret(namespace, name);
  if (!secret)
    throw new CredentialError('SourceNotFound', `${field}: Secret ${namespace}/${name} not found`);
  return secret;
}

/** Every Secret the credential reads, for mapping source-Secret events back to credentials. */
export function referencedSecrets(
  cred: RegistryCredential,
  operatorNamespace: string,
): Array<{ namespace: string; name: string }> {
  const refs: Array<SecretReference | undefined> = [];
  for (const r of cred.spec.registries ?? []) {
    refs.push(
      r.basic?.secretRef,
      r.dockerConfig?.secretRef,
      r.ecr?.credentialsSecretRef,
      r.gcp?.serviceAccountKeySecretRef,
      r.acr?.clientSecretRef,
    );
  }
  return refs
    .filter((ref): ref is SecretReference => ref !== undefined)
    .map((ref) => ({ namespace: ref.namespace ?? operatorNamespace, name: ref.name }));
}

function register(entries: ReadonlyMap<string, DockerAuthEntry>): void {
  for (const entry of entries.values()) {
    secretValues.add(entry.password, entry.auth, entry.identitytoken, entry.registrytoken);
  }
}

/**
 * Resolves the static sources. Throws CredentialError carrying the first failure's reason;
 * forbidden references are checked for every registry first, so a forbidden source is
 * reported even when another source is also missing.
 */
export function resolveStaticCredentials(
  cred: RegistryCredential,
  cache: SourceSecrets,
  policy: SourcePolicy,
): ResolvedCredentials {
  const registries = cred.spec.registries ?? [];
  registries.forEach((registry, i) => {
    const field = `spec.registries[${i}]`;
    for (const [ref, path] of [
      [registry.basic?.secretRef, 'basic.secretRef'],
      [registry.dockerConfig?.secretRef, 'dockerConfig.secretRef'],
      [registry.ecr?.credentialsSecretRef, 'ecr.credentialsSecretRef'],
      [registry.gcp?.serviceAccountKeySecretRef, 'gcp.serviceAccountKeySecretRef'],
      [registry.acr?.clientSecretRef, 'acr.clientSecretRef'],
    ] as const) {
      if (ref) sourceLocation(ref, policy, `${field}.${path}`);
    }
  });
  const parts: Array<Map<string, DockerAuthEntry>> = [];
  const statuses: RegistryStatus[] = [];
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
      );
      const part = resolveBasic(registry.basic, secret, server);
      register(part);
      parts.push(part);
      statuses.push({ server, source: 'basic' });
    } else if (registry.dockerConfig) {
      const secret = readSource(
        registry.dockerConfig.secretRef,
        cache,
        policy,
        `${field}.dockerConfig.secretRef`,
      );
      const part = resolveDockerConfig(secret);
      register(part);
      parts.push(part);
      for (const server of [...part.keys()].sort())
        statuses.push({ server, source: 'dockerConfig' });
    } else if (kind) {
      throw new CredentialError(
        'InvalidSpec',
        `${field}: the ${kind} source is not supported by this build of regcred-operator yet`,
      );
    } else {
      throw new CredentialError(
        'InvalidSpec',
        `${field}: exactly one of basic, dockerConfig, ecr, gcp, acr is required`,
      );
    }
  });
  return { entries: mergeRegistryAuths(parts), registries: statuses };
}

export interface CloudResolution {
  tokens: TokenCache;
  now: Date;
  endpoints?: CloudEndpoints;
  /** Called for every cloud call, for metrics. */
  onRefresh?: (source: 'ecr' | 'gcp' | 'acr', ok: boolean, error?: string) => void;
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
  const staticOnly: RegistryCredential = {
    ...cred,
    spec: { ...cred.spec, registries: registries.filter((r) => r.basic || r.dockerConfig) },
  };
  // Forbidden references are refused before anything is read, cloud ones included.
  registries.forEach((registry, i) => {
    const secretRef = cloudSecretRef(registry);
    if (secretRef) sourceLocation(secretRef.ref, policy, `spec.registries[${i}].${secretRef.path}`);
  });
  const resolvedStatic = resolveStaticCredentials(staticOnly, cache, policy);
  const parts: Array<Map<string, DockerAuthEntry>> = [resolvedStatic.entries];
  const statuses: RegistryStatus[] = [...resolvedStatic.registries];
  const refreshErrors: CredentialError[] = [];
  let nextAttemptAt: Date | undefined;
  const refreshIntervalMs = cred.spec.refreshInterval
    ? parseDuration(cred.spec.refreshInterval)
    : undefined;
  const forceToken = cred.metadata.annotations?.[REFRESH_REQUESTED_ANNOTATION];
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
      const secret = readSource(secretRef.ref, cache, policy, `${field}.${secretRef.path}`);
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
    adoptWrittenToken(cred, key, cloud, forceToken);
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
          cloud.onRefresh?.(kind, false, error instanceof Error ? error.message : String(error));
          throw error;
        }
      },
      cloud.now,
      {
        ...(forceToken !== undefined ? { forceToken } : {}),
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
      secretValues.add(lookup.token.password);
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
  forceToken: string | undefined,
): void {
  if (cloud.tokens.knows(key)) return;
  const previous = cred.status?.registries?.find((r) => r.server === key.server);
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
    forceToken,
  );
}
