// Where cloud tokens survive a restart: one Secret per RegistryCredential in the operator's own
// namespace, which tenants cannot write. A restarted or new leader adopts the unexpired token
// from there, never from the copies in tenant namespaces: those are output to be corrected
// (a tenant's edit is drift, rewritten with the genuine token), not input to be believed.
import type { V1Secret } from '@kubernetes/client-node';
import {
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  type RegistryCredential,
  TOKEN_STATE_LABEL,
} from '../api/types.ts';
import {
  buildDockerConfigJson,
  type DockerAuthEntry,
  encodeBase64,
  parseDockerConfigSecret,
} from '../credentials/dockerconfigjson.ts';
import type { ResolvedWithTokens } from '../credentials/resolve.ts';
import { KubeApiError } from '../kube/rest.ts';
import { ownerReference } from './desired.ts';
import type { ReconcileContext } from './reconcile-context.ts';

/** The key holding the saved auths (the dockerconfigjson of the cloud registries only). */
export const TOKEN_STATE_KEY = 'tokens.json';

export function tokenStateName(credName: string): string {
  return `regcred-tokens.${credName}`;
}

/** The cloud registries' auths of a resolution: what is worth keeping across a restart. */
export function cloudAuths(resolved: ResolvedWithTokens): Map<string, DockerAuthEntry> {
  const cloud = new Set(
    resolved.registries
      .filter((r) => r.source === 'ecr' || r.source === 'gcp' || r.source === 'acr')
      .map((r) => r.server),
  );
  return new Map([...resolved.entries].filter(([server]) => cloud.has(server)));
}

export class TokenState {
  private readonly ctx: ReconcileContext;

  constructor(ctx: ReconcileContext) {
    this.ctx = ctx;
  }

  /** The auths saved for `cred`, from its own state Secret only (checked by label and uid). */
  saved(cred: RegistryCredential): Map<string, DockerAuthEntry> | undefined {
    const secret = this.secretOf(cred);
    const data = secret?.data?.[TOKEN_STATE_KEY];
    if (!data) return undefined;
    try {
      return parseDockerConfigSecret('kubernetes.io/dockerconfigjson', {
        '.dockerconfigjson': data,
      });
    } catch {
      return undefined;
    }
  }

  /** True when the saved auths are exactly `auths` (nothing to write). */
  holds(cred: RegistryCredential, auths: ReadonlyMap<string, DockerAuthEntry>): boolean {
    const data = this.secretOf(cred)?.data?.[TOKEN_STATE_KEY];
    const want = auths.size === 0 ? undefined : encodeBase64(buildDockerConfigJson(auths));
    return data === want;
  }

  /**
   * Saves `auths` before they are fanned out, so a leader that takes over finds what every
   * namespace was given. Writes only when they changed (once per refresh).
   */
  async save(cred: RegistryCredential, auths: ReadonlyMap<string, DockerAuthEntry>): Promise<void> {
    if (auths.size === 0 || this.holds(cred, auths)) return;
    const namespace = this.ctx.policy.operatorNamespace;
    const name = tokenStateName(cred.metadata.name ?? '');
    const data = { [TOKEN_STATE_KEY]: encodeBase64(buildDockerConfigJson(auths)) };
    const existing = this.secretOf(cred);
    if (existing) {
      this.ctx.view.wroteSecret(await this.ctx.api.replaceSecret({ ...existing, data }));
      return;
    }
    const desired: V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name,
        namespace,
        labels: {
          [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
          [TOKEN_STATE_LABEL]: cred.metadata.name ?? '',
        },
        // Garbage collection removes it with the credential.
        ownerReferences: [ownerReference(cred)],
      },
      type: 'Opaque',
      data,
    };
    try {
      this.ctx.view.wroteSecret(await this.ctx.api.createSecret(desired));
    } catch (error) {
      if (!(error instanceof KubeApiError && error.alreadyExists)) throw error;
      // One left by an earlier credential of the same name (garbage collection pending), or
      // one the cache has not shown us yet: take it over only if it is ours to take.
      const current = await this.ctx.api.readSecret(namespace, name);
      if (!current || current.metadata?.labels?.[TOKEN_STATE_LABEL] !== cred.metadata.name) {
        throw error;
      }
      this.ctx.view.wroteSecret(
        await this.ctx.api.replaceSecret({
          ...current,
          metadata: { ...current.metadata, ownerReferences: [ownerReference(cred)] },
          data,
        }),
      );
    }
  }

  private secretOf(cred: RegistryCredential): V1Secret | undefined {
    const secret = this.ctx.view.sourceSecret(
      this.ctx.policy.operatorNamespace,
      tokenStateName(cred.metadata.name ?? ''),
    );
    if (!secret || secret.metadata?.labels?.[TOKEN_STATE_LABEL] !== cred.metadata.name) {
      return undefined;
    }
    const uid = cred.metadata.uid;
    return secret.metadata?.ownerReferences?.some((ref) => ref.uid === uid) ? secret : undefined;
  }
}
