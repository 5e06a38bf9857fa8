// Turns a RegistryCredential's registries into one set of auths entries, reading source
// Secrets from the cache. Where a source Secret may come from is decided here and only here:
// a secretRef may name another namespace only if the operator was started allowing it.
import type { V1Secret } from '@kubernetes/client-node';
import type {
  RegistryCredential,
  RegistryStatus,
  SecretReference,
  SourceKind,
} from '../api/types.ts';
import { secretValues } from '../observability/redact.ts';
import type { DockerAuthEntry } from './dockerconfigjson.ts';
import { CredentialError } from './errors.ts';
import { mergeRegistryAuths, resolveBasic, resolveDockerConfig } from './static-sources.ts';

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
