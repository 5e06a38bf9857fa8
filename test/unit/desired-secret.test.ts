// The Secret we want and when a namespace's copy differs from it, field by field: each thing we
// own, changed alone, makes an update; everything we do not own, changed, does not.
import assert from 'node:assert/strict';
import type { V1OwnerReference, V1Secret } from '@kubernetes/client-node';
import {
  ADOPT_ANNOTATION,
  CREDENTIAL_LABEL,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  type RegistryCredential,
} from '../../src/api/types.ts';
import {
  DATA_DIGEST_KEY,
  dataDigest,
  desiredSecret,
  mergeSecretForUpdate,
  olderCredentialWins,
  ownerReference,
  secretNeedsUpdate,
} from '../../src/controller/desired.ts';
import { CredentialError } from '../../src/credentials/errors.ts';

const cred: RegistryCredential = {
  apiVersion: 'regcred.dev/v1alpha1',
  kind: 'RegistryCredential',
  metadata: { name: 'acme', uid: 'uid-1' },
  spec: { registries: [] },
};
const want = desiredSecret(cred, 'team-a', '{"auths":{}}');

function copy(secret: V1Secret): V1Secret {
  return structuredClone(secret);
}

describe('the desired Secret and when an existing one needs an update', () => {
  it('is a v1 Secret with our two labels and one controller ownerReference', () => {
    assert.equal(want.apiVersion, 'v1');
    assert.equal(want.kind, 'Secret');
    assert.deepEqual(want.metadata?.labels, {
      [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
      [CREDENTIAL_LABEL]: 'acme',
    });
    assert.deepEqual(want.metadata?.ownerReferences, [ownerReference(cred)]);
  });

  it('a name longer than a label value: InvalidSpec saying so', () => {
    const long = { ...cred, metadata: { ...cred.metadata, name: 'n'.repeat(64) } };
    assert.throws(
      () => desiredSecret(long, 'team-a', '{}'),
      (error: unknown) =>
        error instanceof CredentialError &&
        error.reason === 'InvalidSpec' &&
        error.message.startsWith('metadata.name is longer than 63 characters'),
    );
    assert.doesNotThrow(() =>
      desiredSecret({ ...cred, metadata: { ...cred.metadata, name: 'n'.repeat(63) } }, 'x', '{}'),
    );
  });

  it('no ownerReference without both a name and a uid', () => {
    for (const metadata of [{ name: 'acme' }, { uid: 'u' }, {}]) {
      assert.throws(() => ownerReference({ ...cred, metadata }), /without metadata.name or/);
    }
  });

  it('an identical copy, or one differing only in what is not ours, needs nothing', () => {
    assert.equal(secretNeedsUpdate(copy(want), want), false);
    const theirs = copy(want);
    theirs.metadata = {
      ...theirs.metadata,
      labels: { ...theirs.metadata?.labels, team: 'a' },
      annotations: { note: 'x' },
      ownerReferences: [
        ...(theirs.metadata?.ownerReferences ?? []),
        { apiVersion: 'apps/v1', kind: 'Deployment', name: 'd', uid: 'd1' },
      ],
    };
    assert.equal(secretNeedsUpdate(theirs, want), false);
  });

  it('each thing we own, changed alone, needs an update', () => {
    const labels = (s: V1Secret) => {
      s.metadata ??= {};
      s.metadata.labels ??= {};
      return s.metadata.labels;
    };
    const changes: Array<[string, (s: V1Secret) => void]> = [
      [
        'type',
        (s) => {
          s.type = 'Opaque';
        },
      ],
      [
        'no type',
        (s) => {
          delete s.type;
        },
      ],
      [
        'data value',
        (s) => {
          s.data = { '.dockerconfigjson': 'e30=' };
        },
      ],
      [
        'extra data key',
        (s) => {
          s.data = { ...s.data, extra: 'eA==' };
        },
      ],
      [
        'no data',
        (s) => {
          delete s.data;
        },
      ],
      [
        'managed-by label',
        (s) => {
          labels(s)[MANAGED_BY_LABEL] = 'x';
        },
      ],
      [
        'credential label',
        (s) => {
          delete labels(s)[CREDENTIAL_LABEL];
        },
      ],
      [
        'no labels',
        (s) => {
          delete s.metadata?.labels;
        },
      ],
      [
        'no ownerReference',
        (s) => {
          s.metadata = { ...s.metadata, ownerReferences: [] };
        },
      ],
      [
        'two of ours',
        (s) => {
          s.metadata = { ...s.metadata, ownerReferences: [ref(), ref({ uid: 'u2' })] };
        },
      ],
      ['ref apiVersion', (s) => setRef(s, { apiVersion: 'regcred.dev/v1beta1' })],
      ['ref name', (s) => setRef(s, { name: 'other' })],
      ['ref uid', (s) => setRef(s, { uid: 'uid-2' })],
      ['ref controller', (s) => setRef(s, { controller: false })],
      ['ref blockOwnerDeletion', (s) => setRef(s, { blockOwnerDeletion: true })],
    ];
    for (const [what, change] of changes) {
      const existing = copy(want);
      change(existing);
      assert.equal(secretNeedsUpdate(existing, want), true, what);
    }
  });

  it('unset controller and blockOwnerDeletion are false', () => {
    const existing = copy(want);
    setRef(existing, { controller: undefined, blockOwnerDeletion: undefined });
    const wanted = copy(want);
    setRef(wanted, { controller: false, blockOwnerDeletion: undefined });
    assert.equal(secretNeedsUpdate(existing, wanted), false);
  });

  it('a cached copy holding only the digest of its data compares by digest', () => {
    const cached = copy(want);
    cached.data = { [DATA_DIGEST_KEY]: dataDigest(want.data) };
    assert.equal(secretNeedsUpdate(cached, want), false);
    cached.data = { [DATA_DIGEST_KEY]: dataDigest({ '.dockerconfigjson': 'e30=' }) };
    assert.equal(secretNeedsUpdate(cached, want), true);
    // The digest key beside real data is just another key.
    cached.data = { ...want.data, [DATA_DIGEST_KEY]: dataDigest(want.data) };
    assert.equal(secretNeedsUpdate(cached, want), true);
  });

  it('the digest covers keys, values, and where one ends', () => {
    assert.equal(dataDigest({ a: '1', b: '2' }), dataDigest({ b: '2', a: '1' }));
    assert.notEqual(dataDigest({ a: '1' }), dataDigest({ a: '2' }));
    assert.notEqual(dataDigest({ a: '1' }), dataDigest({ b: '1' }));
    assert.notEqual(dataDigest({ ab: '' }), dataDigest({ a: 'b' }));
    assert.equal(dataDigest(undefined), dataDigest({}));
    assert.match(dataDigest({}), /^[0-9a-f]{64}$/);
  });

  it('the PUT keeps everyone else’s metadata, replaces our ownerReference and drops adopt', () => {
    const existing: V1Secret = {
      metadata: {
        name: 'acme',
        namespace: 'team-a',
        resourceVersion: '42',
        labels: { team: 'a', [CREDENTIAL_LABEL]: 'old' },
        annotations: { [ADOPT_ANNOTATION]: 'true', note: 'x' },
        ownerReferences: [
          { apiVersion: 'apps/v1', kind: 'Deployment', name: 'd', uid: 'd1' },
          ref({ name: 'old', uid: 'old-uid' }),
        ],
      },
      type: 'Opaque',
      immutable: false,
      stringData: { a: 'b' },
      data: { a: 'Yg==' },
    };
    const merged = mergeSecretForUpdate(existing, want);
    assert.deepEqual(merged, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: 'acme',
        namespace: 'team-a',
        resourceVersion: '42',
        labels: { team: 'a', [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [CREDENTIAL_LABEL]: 'acme' },
        annotations: { note: 'x' },
        ownerReferences: [
          { apiVersion: 'apps/v1', kind: 'Deployment', name: 'd', uid: 'd1' },
          ownerReference(cred),
        ],
      },
      type: want.type,
      immutable: false,
      data: want.data,
    });
    const onlyAdopt = mergeSecretForUpdate(
      { metadata: { annotations: { [ADOPT_ANNOTATION]: 'true' } } },
      want,
    );
    assert.equal(onlyAdopt.metadata?.annotations, undefined, 'no empty annotations map');
  });

  it('the older credential keeps a contested Secret: timestamp, then name, then uid', () => {
    const at = (t: string | undefined, name: string, uid?: string) => ({
      name,
      uid,
      creationTimestamp: t,
    });
    const t1 = '2026-01-01T00:00:00Z';
    const t2 = '2026-01-02T00:00:00Z';
    assert.equal(olderCredentialWins(at(t1, 'b'), at(t2, 'a')), -1);
    assert.equal(olderCredentialWins(at(t2, 'a'), at(t1, 'b')), 1);
    assert.equal(olderCredentialWins(at(t1, 'a'), at(t1, 'b')), -1);
    assert.equal(olderCredentialWins(at(t1, 'b'), at(t1, 'a')), 1);
    assert.equal(olderCredentialWins(at(t1, 'a', 'u1'), at(t1, 'a', 'u2')), -1);
    assert.equal(olderCredentialWins(at(t1, 'a', 'u2'), at(t1, 'a', 'u1')), 1);
    assert.equal(olderCredentialWins(at(t1, 'a', 'u1'), at(t1, 'a', 'u1')), -1);
    assert.equal(olderCredentialWins(at(t1, 'a'), at(t1, 'a', 'u1')), -1, 'no uid sorts first');
    assert.equal(olderCredentialWins(at(undefined, 'a'), at(t2, 'b')), 1, 'no timestamp: newest');
    assert.equal(olderCredentialWins(at('garbage', 'a'), at(t2, 'b')), 1);
    assert.equal(
      olderCredentialWins({ name: 'b', creationTimestamp: new Date(t1) }, at(t2, 'a')),
      -1,
    );
  });
});

function ref(over: Partial<V1OwnerReference> = {}): V1OwnerReference {
  return { ...ownerReference(cred), ...over };
}

function setRef(secret: V1Secret, over: Partial<V1OwnerReference>): void {
  if (secret.metadata) secret.metadata.ownerReferences = [ref(over)];
}
