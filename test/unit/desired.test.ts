import assert from 'node:assert/strict';
import type { V1LocalObjectReference, V1OwnerReference, V1Secret } from '@kubernetes/client-node';
import fc from 'fast-check';
import type { RegistryCredential } from '../../src/api/types.ts';
import {
  type CredentialAge,
  desiredSecret,
  effectiveSecretName,
  mergeSecretForUpdate,
  olderCredentialWins,
  secretNeedsUpdate,
  withoutPullSecretEntry,
  withPullSecretEntry,
} from '../../src/controller/desired.ts';
import { classifySecret, secretConflictMessage } from '../../src/controller/ownership.ts';
import { CredentialError } from '../../src/credentials/errors.ts';

const CONFIG = '{"auths":{"r.example.com":{"username":"u","password":"p","auth":"dTpw"}}}';
const DCJ = 'kubernetes.io/dockerconfigjson';

function credential(name = 'acme', secretName?: string, uid = 'uid-1'): RegistryCredential {
  return {
    apiVersion: 'regcred.dev/v1alpha1',
    kind: 'RegistryCredential',
    metadata: { name, uid, creationTimestamp: new Date('2025-01-01T00:00:00Z') },
    spec: {
      ...(secretName === undefined ? {} : { secretName }),
      namespaces: ['team-a'],
      registries: [],
    },
  };
}

const userSecret = (extra: Partial<V1Secret> = {}): V1Secret => ({
  metadata: { name: 'acme', namespace: 'team-a', resourceVersion: '42' },
  type: DCJ,
  data: { '.dockerconfigjson': 'e30=' },
  ...extra,
});

const foreignOwner: V1OwnerReference = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  name: 'app',
  uid: 'd-1',
};

describe('desired state', () => {
  describe('desiredSecret', () => {
    it('is the pull Secret API.md describes, owned by the RegistryCredential', () => {
      assert.deepEqual(desiredSecret(credential(), 'team-a', CONFIG), {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name: 'acme',
          namespace: 'team-a',
          labels: {
            'app.kubernetes.io/managed-by': 'regcred-operator',
            'regcred.dev/credential': 'acme',
          },
          ownerReferences: [
            {
              apiVersion: 'regcred.dev/v1alpha1',
              kind: 'RegistryCredential',
              name: 'acme',
              uid: 'uid-1',
              controller: true,
              blockOwnerDeletion: false,
            },
          ],
        },
        type: DCJ,
        data: { '.dockerconfigjson': Buffer.from(CONFIG).toString('base64') },
      });
    });

    it('uses spec.secretName when given, the credential name otherwise', () => {
      assert.equal(effectiveSecretName(credential('acme', 'acme-pull')), 'acme-pull');
      assert.equal(effectiveSecretName(credential('acme')), 'acme');
      assert.equal(
        desiredSecret(credential('acme', 'acme-pull'), 'x', CONFIG).metadata?.name,
        'acme-pull',
      );
    });

    it('refuses a credential name too long to be a label value', () => {
      assert.throws(
        () => desiredSecret(credential('a'.repeat(64)), 'x', CONFIG),
        (err: unknown) => err instanceof CredentialError && err.reason === 'InvalidSpec',
      );
      assert.doesNotThrow(() => desiredSecret(credential('a'.repeat(63)), 'x', CONFIG));
    });
  });

  describe('classifySecret', () => {
    const ours = desiredSecret(credential(), 'team-a', CONFIG);

    it('absent when there is no Secret', () => {
      assert.deepEqual(classifySecret(undefined, 'acme'), { kind: 'absent' });
    });

    it('ours when it carries our two labels', () => {
      assert.deepEqual(classifySecret(ours, 'acme'), { kind: 'ours' });
    });

    it('otherCredential when managed for another RegistryCredential', () => {
      assert.deepEqual(classifySecret(ours, 'globex'), { kind: 'otherCredential', owner: 'acme' });
    });

    it('another credential keeps its Secret even if someone asks us to adopt it', () => {
      const annotated: V1Secret = {
        ...ours,
        metadata: { ...ours.metadata, annotations: { 'regcred.dev/adopt': 'globex' } },
      };
      assert.deepEqual(classifySecret(annotated, 'globex'), {
        kind: 'otherCredential',
        owner: 'acme',
      });
    });

    it('unmanaged for a user-made Secret', () => {
      assert.deepEqual(classifySecret(userSecret(), 'acme'), { kind: 'unmanaged' });
    });

    it('adoptable when its owner annotates it for this credential', () => {
      const handedOver = userSecret({
        metadata: {
          name: 'acme',
          namespace: 'team-a',
          annotations: { 'regcred.dev/adopt': 'acme' },
        },
      });
      assert.deepEqual(classifySecret(handedOver, 'acme'), { kind: 'adoptable' });
      assert.deepEqual(classifySecret(handedOver, 'globex'), { kind: 'unmanaged' });
    });

    it('never adopts a Secret of another type: we never change a type', () => {
      const opaque = userSecret({
        type: 'Opaque',
        metadata: {
          name: 'acme',
          namespace: 'team-a',
          annotations: { 'regcred.dev/adopt': 'acme' },
        },
      });
      assert.deepEqual(classifySecret(opaque, 'acme'), { kind: 'unmanaged' });
      assert.match(
        secretConflictMessage(opaque, { kind: 'unmanaged' }),
        /has type Opaque; .* never changes/,
      );
      const untyped = userSecret({ type: undefined });
      assert.match(secretConflictMessage(untyped, { kind: 'unmanaged' }), /has type Opaque/);
    });

    it('does not call a Secret of another type ours, even with our labels', () => {
      const relabelled: V1Secret = { ...ours, type: 'Opaque' };
      assert.deepEqual(classifySecret(relabelled, 'acme'), { kind: 'unmanaged' });
    });

    it('never adopts a Secret another controller owns', () => {
      const controlled = userSecret({
        metadata: {
          name: 'acme',
          namespace: 'team-a',
          annotations: { 'regcred.dev/adopt': 'acme' },
          ownerReferences: [{ ...foreignOwner, controller: true }],
        },
      });
      assert.deepEqual(classifySecret(controlled, 'acme'), { kind: 'unmanaged' });
      assert.equal(
        secretConflictMessage(controlled, { kind: 'unmanaged' }),
        'Secret team-a/acme is controlled by Deployment app',
      );
      // A non-controller owner does not stand in the way.
      const owned = userSecret({
        metadata: { ...controlled.metadata, ownerReferences: [foreignOwner] },
      });
      assert.deepEqual(classifySecret(owned, 'acme'), { kind: 'adoptable' });
    });

    it('explains conflicts in the words of API.md, without data', () => {
      const user = userSecret({ metadata: { name: 'acme-pull', namespace: 'ns-x' } });
      assert.equal(
        secretConflictMessage(user, classifySecret(user, 'acme')),
        'Secret ns-x/acme-pull is not managed by regcred-operator',
      );
      assert.equal(
        secretConflictMessage(ours, classifySecret(ours, 'globex')),
        'Secret team-a/acme is managed by RegistryCredential acme',
      );
    });
  });

  describe('secretNeedsUpdate and mergeSecretForUpdate', () => {
    const desired = desiredSecret(credential(), 'team-a', CONFIG);
    const current: V1Secret = {
      ...structuredClone(desired),
      metadata: {
        ...structuredClone(desired.metadata),
        resourceVersion: '7',
        uid: 's-1',
        labels: { ...desired.metadata?.labels, 'team.example.com/cost-center': '42' },
        annotations: { 'backup.example.com/skip': 'true' },
        ownerReferences: [
          foreignOwner,
          ...(structuredClone(desired.metadata?.ownerReferences) ?? []),
        ],
      },
    };

    it('a Secret already in the desired state needs no write, whatever others added', () => {
      assert.equal(secretNeedsUpdate(desired, desired), false);
      assert.equal(secretNeedsUpdate(current, desired), false);
    });

    const drifted: [string, (s: V1Secret) => void][] = [
      ['new data', (s) => (s.data = { '.dockerconfigjson': 'e30=' })],
      ['an extra data key', (s) => (s.data = { ...s.data, extra: 'eA==' })],
      ['no data', (s) => delete s.data],
      [
        'our credential label changed',
        (s) =>
          (s.metadata = {
            ...s.metadata,
            labels: {
              'app.kubernetes.io/managed-by': 'regcred-operator',
              'regcred.dev/credential': 'x',
            },
          }),
      ],
      [
        'our managed-by label gone',
        (s) => (s.metadata = { ...s.metadata, labels: { 'regcred.dev/credential': 'acme' } }),
      ],
      [
        'an ownerReference to an earlier credential of the same name',
        (s) =>
          (s.metadata = {
            ...s.metadata,
            ownerReferences: [
              { ...(desired.metadata?.ownerReferences?.[0] as V1OwnerReference), uid: 'old' },
            ],
          }),
      ],
      [
        'two credential ownerReferences',
        (s) =>
          (s.metadata = {
            ...s.metadata,
            ownerReferences: [
              ...(desired.metadata?.ownerReferences ?? []),
              { ...(desired.metadata?.ownerReferences?.[0] as V1OwnerReference), uid: 'old' },
            ],
          }),
      ],
      ['no ownerReference', (s) => (s.metadata = { ...s.metadata, ownerReferences: [] })],
      [
        'blockOwnerDeletion true',
        (s) =>
          (s.metadata = {
            ...s.metadata,
            ownerReferences: [
              {
                ...(desired.metadata?.ownerReferences?.[0] as V1OwnerReference),
                blockOwnerDeletion: true,
              },
            ],
          }),
      ],
    ];
    for (const [what, change] of drifted) {
      it(`notices ${what}, and the merged object is back in the desired state`, () => {
        const existing = structuredClone(current);
        change(existing);
        assert.equal(secretNeedsUpdate(existing, desired), true);
        const merged = mergeSecretForUpdate(existing, desired);
        assert.equal(secretNeedsUpdate(merged, desired), false);
      });
    }

    it('an adopted Secret keeps its metadata, loses the adopt annotation, becomes ours', () => {
      const handedOver: V1Secret = {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name: 'acme',
          namespace: 'team-a',
          resourceVersion: '9',
          labels: { app: 'legacy' },
          annotations: { 'regcred.dev/adopt': 'acme', note: 'keep me' },
          ownerReferences: [foreignOwner],
        },
        type: DCJ,
        data: { '.dockerconfigjson': 'b2xk', other: 'eA==' },
      };
      assert.deepEqual(classifySecret(handedOver, 'acme'), { kind: 'adoptable' });
      const merged = mergeSecretForUpdate(handedOver, desired);
      assert.deepEqual(merged.metadata, {
        name: 'acme',
        namespace: 'team-a',
        resourceVersion: '9',
        labels: {
          app: 'legacy',
          'app.kubernetes.io/managed-by': 'regcred-operator',
          'regcred.dev/credential': 'acme',
        },
        annotations: { note: 'keep me' },
        ownerReferences: [foreignOwner, ...(desired.metadata?.ownerReferences ?? [])],
      });
      assert.deepEqual(merged.data, desired.data);
      assert.equal(merged.type, DCJ);
      assert.deepEqual(classifySecret(merged, 'acme'), { kind: 'ours' });
      // The input is left alone.
      assert.equal(handedOver.metadata?.annotations?.['regcred.dev/adopt'], 'acme');
    });

    it('drops the annotations field when the adopt annotation was the only one', () => {
      const only = userSecret({
        metadata: {
          name: 'acme',
          namespace: 'team-a',
          annotations: { 'regcred.dev/adopt': 'acme' },
        },
      });
      assert.equal(mergeSecretForUpdate(only, desired).metadata?.annotations, undefined);
    });

    it('after any drift, one merge restores the desired state and keeps everything else (property)', () => {
      const labelKey = fc.constantFrom(
        'app',
        'team',
        'app.kubernetes.io/managed-by',
        'regcred.dev/credential',
      );
      const existingArb = fc.record({
        labels: fc.dictionary(labelKey, fc.constantFrom('x', 'acme', 'regcred-operator'), {
          maxKeys: 4,
          noNullPrototype: true,
        }),
        annotations: fc.dictionary(
          fc.constantFrom('a', 'b', 'regcred.dev/adopt'),
          fc.constantFrom('acme', 'y'),
          {
            maxKeys: 3,
            noNullPrototype: true,
          },
        ),
        ownerReferences: fc.array(
          fc.record(
            {
              apiVersion: fc.constantFrom('apps/v1', 'regcred.dev/v1alpha1', 'regcred.dev/v1'),
              kind: fc.constantFrom('Deployment', 'RegistryCredential'),
              name: fc.constantFrom('acme', 'other'),
              uid: fc.constantFrom('uid-1', 'uid-2'),
              controller: fc.boolean(),
            },
            { noNullPrototype: true },
          ),
          { maxLength: 3 },
        ),
        data: fc.dictionary(
          fc.constantFrom('.dockerconfigjson', 'x'),
          fc.constantFrom('e30=', 'eA=='),
          { maxKeys: 2, noNullPrototype: true },
        ),
      });
      fc.assert(
        fc.property(existingArb, (m) => {
          const existing: V1Secret = {
            metadata: {
              name: 'acme',
              namespace: 'team-a',
              resourceVersion: '5',
              labels: m.labels,
              annotations: m.annotations,
              ownerReferences: m.ownerReferences,
            },
            type: DCJ,
            data: m.data,
          };
          const merged = mergeSecretForUpdate(existing, desired);
          assert.equal(secretNeedsUpdate(merged, desired), false);
          assert.equal(merged.metadata?.resourceVersion, '5');
          for (const [k, v] of Object.entries(m.labels)) {
            if (k !== 'app.kubernetes.io/managed-by' && k !== 'regcred.dev/credential') {
              assert.equal(merged.metadata?.labels?.[k], v);
            }
          }
          for (const [k, v] of Object.entries(m.annotations)) {
            assert.equal(
              merged.metadata?.annotations?.[k],
              k === 'regcred.dev/adopt' ? undefined : v,
            );
          }
          const foreign = m.ownerReferences.filter(
            (r) => !(r.kind === 'RegistryCredential' && r.apiVersion.startsWith('regcred.dev/')),
          );
          assert.deepEqual(merged.metadata?.ownerReferences?.slice(0, foreign.length), foreign);
          // Merging twice changes nothing more.
          assert.deepEqual(mergeSecretForUpdate(merged, desired), merged);
        }),
      );
    });
  });

  describe('imagePullSecrets entries', () => {
    const entries = fc.array(
      fc.record(
        { name: fc.constantFrom('acme', 'other', 'legacy', 'zzz') },
        { requiredKeys: [], noNullPrototype: true },
      ),
      { maxLength: 8 },
    );
    const others = (list: readonly V1LocalObjectReference[]) =>
      list.filter((e) => e.name !== 'acme');

    it('appends our entry after the ones a user already has', () => {
      assert.deepEqual(withPullSecretEntry([{ name: 'zzz' }, { name: 'aaa' }], 'acme'), [
        { name: 'zzz' },
        { name: 'aaa' },
        { name: 'acme' },
      ]);
      assert.deepEqual(withPullSecretEntry(undefined, 'acme'), [{ name: 'acme' }]);
      assert.deepEqual(withPullSecretEntry([], 'acme'), [{ name: 'acme' }]);
    });

    it('changes nothing when our entry is there once', () => {
      assert.equal(
        withPullSecretEntry([{ name: 'x' }, { name: 'acme' }, { name: 'y' }], 'acme'),
        undefined,
      );
    });

    it('collapses duplicates of our entry only, keeping the first in place', () => {
      const list = [{ name: 'acme' }, { name: 'dup' }, { name: 'dup' }, { name: 'acme' }, {}];
      assert.deepEqual(withPullSecretEntry(list, 'acme'), [
        { name: 'acme' },
        { name: 'dup' },
        { name: 'dup' },
        {},
      ]);
    });

    it("a user's entries keep their order and are never dropped (property)", () => {
      fc.assert(
        fc.property(entries, (list) => {
          const result = withPullSecretEntry(list, 'acme');
          const final = result ?? list;
          assert.equal(final.filter((e) => e.name === 'acme').length, 1);
          assert.deepEqual(others(final), others(list));
          assert.equal(result === undefined, list.filter((e) => e.name === 'acme').length === 1);
          // Idempotent: the next reconcile writes nothing.
          assert.equal(withPullSecretEntry(final, 'acme'), undefined);
        }),
      );
    });

    it('removes exactly our entries, leaving the rest in order (property)', () => {
      fc.assert(
        fc.property(entries, (list) => {
          const result = withoutPullSecretEntry(list, 'acme');
          assert.equal(result === undefined, !list.some((e) => e.name === 'acme'));
          assert.deepEqual(result ?? list, others(list));
          assert.equal(withoutPullSecretEntry(result ?? list, 'acme'), undefined);
        }),
      );
    });

    it('removing our only entry leaves an empty list', () => {
      assert.deepEqual(withoutPullSecretEntry([{ name: 'acme' }], 'acme'), []);
      assert.equal(withoutPullSecretEntry(undefined, 'acme'), undefined);
    });

    it('does not share entry objects with the input', () => {
      const list = [{ name: 'x' }];
      const result = withPullSecretEntry(list, 'acme');
      assert.notEqual(result?.[0], list[0]);
    });
  });

  describe('olderCredentialWins', () => {
    it('the older credential keeps the Secret', () => {
      const old = { name: 'zeta', creationTimestamp: new Date('2024-01-01T00:00:00Z') };
      const young = { name: 'alpha', creationTimestamp: '2025-01-01T00:00:00Z' };
      assert.equal(olderCredentialWins(old, young), -1);
      assert.equal(olderCredentialWins(young, old), 1);
    });

    it('on the same second, the name decides', () => {
      const t = '2025-01-01T00:00:00Z';
      assert.equal(
        olderCredentialWins(
          { name: 'a', creationTimestamp: t },
          { name: 'b', creationTimestamp: new Date(t) },
        ),
        -1,
      );
    });

    it('a credential without a timestamp counts as newest', () => {
      assert.equal(
        olderCredentialWins({ name: 'a' }, { name: 'b', creationTimestamp: new Date(0) }),
        1,
      );
      assert.equal(
        olderCredentialWins(
          { name: 'a', creationTimestamp: 'garbage' },
          { name: 'b', creationTimestamp: new Date(0) },
        ),
        1,
      );
    });

    it('is a strict total order, so every replica picks the same winner (property)', () => {
      const age: fc.Arbitrary<CredentialAge> = fc.record(
        {
          name: fc.constantFrom('a', 'b', 'c'),
          creationTimestamp: fc.oneof(
            fc.integer({ min: 0, max: 3 }).map((s) => new Date(s * 1000)),
            fc.integer({ min: 0, max: 3 }).map((s) => new Date(s * 1000).toISOString()),
          ),
          uid: fc.constantFrom('u1', 'u2'),
        },
        { requiredKeys: ['name'] },
      );
      const same = (x: CredentialAge, y: CredentialAge) =>
        x.name === y.name &&
        x.uid === y.uid &&
        (x.creationTimestamp === undefined) === (y.creationTimestamp === undefined) &&
        new Date(x.creationTimestamp ?? 0).getTime() ===
          new Date(y.creationTimestamp ?? 0).getTime();
      fc.assert(
        fc.property(age, age, age, (a, b, c) => {
          if (!same(a, b)) assert.equal(olderCredentialWins(a, b), -olderCredentialWins(b, a));
          if (olderCredentialWins(a, b) === -1 && olderCredentialWins(b, c) === -1) {
            assert.equal(olderCredentialWins(a, c), -1);
          }
        }),
      );
    });
  });
});
