// The event mapping's table tests share this: a MappingView over plain lists, two credentials
// (acme, globex) each selecting its tenant's namespace, and the work items they expect.
import type { V1Namespace, V1Secret, V1ServiceAccount } from '@kubernetes/client-node';
import type { RegistryCredential, RegistryCredentialSpec } from '../../src/api/types.ts';
import {
  EventMapping,
  type MappingView,
  type WorkItem,
} from '../../src/controller/event-mapping.ts';

export const MANAGED = { 'app.kubernetes.io/managed-by': 'regcred-operator' };

export function cred(
  name: string,
  spec: Partial<RegistryCredentialSpec> = {},
  gen = 1,
  observed?: number,
) {
  const c: RegistryCredential = {
    apiVersion: 'regcred.dev/v1alpha1',
    kind: 'RegistryCredential',
    metadata: { name, generation: gen, uid: `uid-${name}` },
    spec: {
      namespaceSelector: { matchLabels: { tenant: name } },
      registries: [{ server: 'r.example.com', basic: { secretRef: { name: 'src' } } }],
      ...spec,
    },
  };
  if (observed !== undefined) c.status = { observedGeneration: observed };
  return c;
}

export function ns(
  name: string,
  labels: Record<string, string> = {},
  terminating = false,
): V1Namespace {
  return {
    metadata: {
      name,
      labels,
      ...(terminating ? { deletionTimestamp: new Date() } : {}),
    },
  };
}

export function managedSecret(namespace: string, owner: string, name = owner): V1Secret {
  return {
    metadata: { name, namespace, labels: { ...MANAGED, 'regcred.dev/credential': owner } },
    type: 'kubernetes.io/dockerconfigjson',
  };
}

export function sa(
  namespace: string,
  name: string,
  entries: string[] = [],
  recorded?: string,
): V1ServiceAccount {
  return {
    metadata: {
      namespace,
      name,
      ...(recorded !== undefined ? { annotations: { 'regcred.dev/pull-secrets': recorded } } : {}),
    },
    imagePullSecrets: entries.map((n) => ({ name: n })),
  };
}

export class View implements MappingView {
  leading = true;
  operatorNamespace = 'regcred-system';
  creds: RegistryCredential[] = [];
  nss = new Map<string, V1Namespace>();
  secrets: V1Secret[] = [];
  current = new Set<string>();
  credentials() {
    return this.creds;
  }
  credential(name: string) {
    return this.creds.find((c) => c.metadata.name === name);
  }
  namespace(name: string) {
    return this.nss.get(name);
  }
  secretsIn(namespace: string) {
    return this.secrets.filter((s) => s.metadata?.namespace === namespace);
  }
  isSourceNamespace(namespace: string) {
    return namespace === this.operatorNamespace;
  }
  upToDate(secret: V1Secret) {
    return this.current.has(`${secret.metadata?.namespace}/${secret.metadata?.name}`);
  }
}

export function fixture() {
  const view = new View();
  view.creds = [cred('acme'), cred('globex')];
  view.nss.set('a1', ns('a1', { tenant: 'acme' }));
  view.nss.set('g1', ns('g1', { tenant: 'globex' }));
  return { view, mapping: new EventMapping(view) };
}

export const fullOf = (c: string): WorkItem => ({ queue: 'full', credential: c });
export const statusOf = (c: string): WorkItem => ({ queue: 'status', credential: c });
export const nsOf = (c: string, n: string, urgent = true): WorkItem => ({
  queue: 'namespace',
  credential: c,
  namespace: n,
  urgent,
});
