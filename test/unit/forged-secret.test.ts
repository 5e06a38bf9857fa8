// A tenant can create a Secret in its own namespace under the name a RegistryCredential writes,
// carrying our two labels. Labels prove nothing: as before a delete (ADR 0009), only a Secret
// with the controller ownerReference to the credential's current uid counts as ours. Neither
// the webhook nor the stuck-Pod check may vouch for anything else.
import assert from 'node:assert/strict';
import type { V1Pod, V1Secret } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { silentLogger } from '../../src/observability/logger.ts';
import { memoizedImageMatcher } from '../../src/webhook/image-matcher.ts';
import { admitPod } from '../../src/webhook/pod-webhook.ts';
import { decideStuckPod } from '../../src/webhook/stuck-pods.ts';
import { WebhookMetrics } from '../../src/webhook/webhook-metrics.ts';
import {
  acmeSecret,
  ourSecret as ours,
  readyCredential,
  teamA,
} from '../support/webhook-fixtures.ts';

const acme = readyCredential('registry.example.com');
/** The tenant's: our labels and type, no ownerReference (or one to an old uid). */
const forged = acmeSecret();
const stale = acmeSecret('old');

const stuck: V1Pod = {
  metadata: {
    name: 'app-1',
    namespace: 'team-a',
    uid: 'p1',
    ownerReferences: [
      { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'rs', uid: 'r1', controller: true },
    ],
  },
  spec: { containers: [{ name: 'app', image: 'registry.example.com/team/app:1' }] },
  status: {
    containerStatuses: [
      {
        name: 'app',
        image: 'registry.example.com/team/app:1',
        imageID: '',
        ready: false,
        restartCount: 0,
        state: { waiting: { reason: 'ImagePullBackOff' } },
      },
    ],
  },
};

describe('a tenant Secret carrying our labels under our name', () => {
  it('is not evicted for: the stuck-Pod check waits for a Secret provably ours', () => {
    const decide = (secret: V1Secret) =>
      decideStuckPod(stuck, {
        namespace: teamA,
        credentials: [acme],
        unmanagedSecret: () => null,
        managedSecret: () => secret,
        serviceAccount: () => ({
          metadata: { name: 'default' },
          imagePullSecrets: [{ name: 'acme' }],
        }),
        webhookServing: false,
        matchesImage: memoizedImageMatcher().matches,
      }).kind;
    assert.equal(decide(forged), 'wait');
    assert.equal(decide(stale), 'wait');
    assert.equal(decide(ours), 'evict');
  });

  it('is not added to Pods by the webhook', async () => {
    const admit = async (secret: V1Secret | undefined) => {
      const response = await admitPod(
        {
          uid: 'r',
          operation: 'CREATE',
          namespace: 'team-a',
          kind: { kind: 'Pod' },
          object: { metadata: { name: 'p' }, spec: { containers: [{ name: 'c', image: 'x' }] } },
        },
        {
          caches: {
            namespace: () => teamA,
            credentials: () => [acme],
            unmanagedSecret: () => null,
            managedSecret: () => secret,
            waitForNamespace: async () => teamA,
          },
          metrics: new WebhookMetrics(new Registry()),
          log: silentLogger,
        },
      );
      return response.patchType === 'JSONPatch';
    };
    assert.equal(await admit(forged), false);
    assert.equal(await admit(stale), false);
    assert.equal(await admit(ours), true);
    // Not written yet: added, the reconciler writes it a moment later.
    assert.equal(await admit(undefined), true);
  });
});
