// What the webhook and stuck-Pod unit tests start from: a RegistryCredential `acme` (uid u1)
// whose credentials resolved, targeting namespaces labelled tenant=acme, and the pull Secret the
// reconciler writes for it in team-a.
import type { V1Secret } from '@kubernetes/client-node';
import {
  API_VERSION,
  CREDENTIAL_LABEL,
  KIND,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  type RegistryCredential,
} from '../../src/api/types.ts';
import type { NamespaceInfo } from '../../src/controller/selection.ts';
import { DOCKER_CONFIG_JSON_TYPE } from '../../src/credentials/dockerconfigjson.ts';

/** `acme` with one basic registry at `server`, CredentialsReady=True. */
export function readyCredential(server: string): RegistryCredential {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: 'acme', uid: 'u1', creationTimestamp: new Date('2026-01-01T00:00:00Z') },
    spec: {
      namespaceSelector: { matchLabels: { tenant: 'acme' } },
      registries: [{ server, basic: { secretRef: { name: 's' } } }],
    },
    status: {
      conditions: [
        {
          type: 'CredentialsReady',
          status: 'True',
          reason: 'CredentialsResolved',
          message: '',
          lastTransitionTime: '2026-01-01T00:00:00Z',
        },
      ],
    },
  };
}

/** team-a/acme with our labels and type; `ownerUid` as the controller reference (none if absent). */
export function acmeSecret(ownerUid?: string): V1Secret {
  return {
    metadata: {
      name: 'acme',
      namespace: 'team-a',
      labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [CREDENTIAL_LABEL]: 'acme' },
      ...(ownerUid
        ? {
            ownerReferences: [
              {
                apiVersion: API_VERSION,
                kind: KIND,
                name: 'acme',
                uid: ownerUid,
                controller: true,
              },
            ],
          }
        : {}),
    },
    type: DOCKER_CONFIG_JSON_TYPE,
  };
}

/** As the reconciler writes it: the controller reference to the credential's uid. */
export const ourSecret: V1Secret = acmeSecret('u1');

export const teamA: NamespaceInfo = {
  name: 'team-a',
  labels: { tenant: 'acme' },
  annotations: {},
  terminating: false,
};
