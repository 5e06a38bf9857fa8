import assert from 'node:assert/strict';
import type { V1Pod, V1Secret, V1ServiceAccount } from '@kubernetes/client-node';
import { imageMatchesServer } from '../../src/credentials/kubelet-keyring.ts';
import { compactPod, decideStuckPod, type StuckPodView } from '../../src/webhook/stuck-pods.ts';
import { ourSecret as ours, readyCredential } from '../support/webhook-fixtures.ts';

const credential = readyCredential('registry.example.com:5000');

function stuckPod(
  options: { owner?: string; image?: string; reason?: string; secrets?: string[] } = {},
): V1Pod {
  return {
    metadata: {
      name: 'app-1',
      namespace: 'team-a',
      uid: 'p1',
      ownerReferences:
        options.owner === undefined
          ? [
              {
                apiVersion: 'apps/v1',
                kind: 'ReplicaSet',
                name: 'app-7d',
                uid: 'r1',
                controller: true,
              },
            ]
          : options.owner === ''
            ? []
            : [
                {
                  apiVersion: 'apps/v1',
                  kind: options.owner,
                  name: 'x',
                  uid: 'o1',
                  controller: true,
                },
              ],
    },
    spec: {
      containers: [{ name: 'app', image: options.image ?? 'registry.example.com:5000/team/app:1' }],
      ...(options.secrets ? { imagePullSecrets: options.secrets.map((name) => ({ name })) } : {}),
    },
    status: {
      containerStatuses: [
        {
          name: 'app',
          image: options.image ?? 'registry.example.com:5000/team/app:1',
          imageID: '',
          ready: false,
          restartCount: 0,
          state: {
            waiting: { reason: options.reason ?? 'ImagePullBackOff', message: 'secret-free text' },
          },
        },
      ],
    },
  };
}

function view(overrides: Partial<StuckPodView> = {}): StuckPodView {
  const sa: V1ServiceAccount = {
    metadata: { name: 'default' },
    imagePullSecrets: [{ name: 'acme' }],
  };
  return {
    namespace: { name: 'team-a', labels: { tenant: 'acme' }, annotations: {}, terminating: false },
    credentials: [credential],
    unmanagedSecret: () => null,
    managedSecret: () => ours,
    serviceAccount: () => sa,
    webhookServing: false,
    matchesImage: (image, servers) => servers.some((server) => imageMatchesServer(image, server)),
    ...overrides,
  };
}

describe('Pods stuck pulling without a credential', () => {
  it('evicts a ReplicaSet Pod whose image the credential covers once the Secret and the ServiceAccount entry exist', () => {
    const d = decideStuckPod(stuckPod(), view());
    assert.deepEqual(d, {
      kind: 'evict',
      credential: 'acme',
      secret: 'acme',
      image: 'registry.example.com:5000/team/app:1',
      owner: 'ReplicaSet/app-7d',
    });
    for (const owner of ['StatefulSet', 'Job', 'DaemonSet']) {
      assert.equal(decideStuckPod(stuckPod({ owner }), view()).kind, 'evict');
    }
    assert.equal(decideStuckPod(stuckPod({ reason: 'ErrImagePull' }), view()).kind, 'evict');
  });

  it('only reports a bare Pod, or one whose controller does not recreate it from a template', () => {
    assert.equal(decideStuckPod(stuckPod({ owner: '' }), view()).kind, 'report');
    assert.equal(decideStuckPod(stuckPod({ owner: 'Node' }), view()).kind, 'report');
  });

  it('waits while the Secret is missing, or nothing proves the new Pod would carry it', () => {
    assert.equal(decideStuckPod(stuckPod(), view({ managedSecret: () => undefined })).kind, 'wait');
    const bare = () => ({ metadata: { name: 'default' } });
    assert.equal(decideStuckPod(stuckPod(), view({ serviceAccount: bare })).kind, 'wait');
    // The webhook adds the entry to the replacement at admission.
    assert.equal(
      decideStuckPod(stuckPod(), view({ serviceAccount: bare, webhookServing: true })).kind,
      'evict',
    );
    const failing = { ...credential, status: { conditions: [] } };
    assert.equal(decideStuckPod(stuckPod(), view({ credentials: [failing] })).kind, 'wait');
    const foreign: V1Secret = { metadata: { name: 'acme', namespace: 'team-a' }, type: 'Opaque' };
    assert.equal(decideStuckPod(stuckPod(), view({ managedSecret: () => foreign })).kind, 'wait');
  });

  it('leaves alone Pods that list the Secret, pull other registries, run, or are outside the targets', () => {
    assert.equal(decideStuckPod(stuckPod({ secrets: ['acme'] }), view()).kind, 'none');
    assert.equal(
      decideStuckPod(stuckPod({ image: 'docker.io/library/nginx:1' }), view()).kind,
      'none',
    );
    assert.equal(
      decideStuckPod(stuckPod({ image: 'registry.example.com/team/app:1' }), view()).kind,
      'none',
    );
    assert.equal(decideStuckPod(stuckPod({ reason: 'CrashLoopBackOff' }), view()).kind, 'none');
    const elsewhere = { name: 'team-b', labels: {}, annotations: {}, terminating: false };
    assert.equal(decideStuckPod(stuckPod(), view({ namespace: elsewhere })).kind, 'none');
    assert.equal(
      decideStuckPod(
        stuckPod(),
        view({ credentials: [{ ...credential, spec: { ...credential.spec, suspend: true } }] }),
      ).kind,
      'none',
    );
  });

  it('decides the same on the trimmed copy the Pod cache keeps, which holds no status message', () => {
    const compact = compactPod(stuckPod());
    assert.deepEqual(decideStuckPod(compact, view()), decideStuckPod(stuckPod(), view()));
    assert.ok(!JSON.stringify(compact).includes('secret-free text'));
  });
});
