import assert from 'node:assert/strict';
import type { V1Secret } from '@kubernetes/client-node';
import type { RegistryCredential } from '../../src/api/types.ts';
import { desiredSecret } from '../../src/controller/desired.ts';
import { decideSecretWrite, isProvablyOurs, managedOwner } from '../../src/controller/ownership.ts';

const DCJ = 'kubernetes.io/dockerconfigjson';
const JSON_A = '{"auths":{"r.example.com":{"auth":"dTpw"}}}';

function cred(name: string, created: string): RegistryCredential {
  return {
    apiVersion: 'regcred.dev/v1alpha1',
    kind: 'RegistryCredential',
    metadata: { name, uid: `uid-${name}`, creationTimestamp: new Date(created) },
    spec: { secretName: 'pull', namespaces: ['t'], registries: [] },
  };
}

const acme = cred('acme', '2026-01-02T00:00:00Z');
const desired = desiredSecret(acme, 't', JSON_A);

function secret(
  labels: Record<string, string>,
  extra: Partial<V1Secret> = {},
  annotations?: Record<string, string>,
): V1Secret {
  return {
    metadata: {
      name: 'pull',
      namespace: 't',
      resourceVersion: '7',
      labels,
      ...(annotations ? { annotations } : {}),
    },
    type: DCJ,
    data: { '.dockerconfigjson': 'e30=' },
    ...extra,
  };
}

const ours = {
  'app.kubernetes.io/managed-by': 'regcred-operator',
  'regcred.dev/credential': 'acme',
};
const globexs = {
  'app.kubernetes.io/managed-by': 'regcred-operator',
  'regcred.dev/credential': 'globex',
};
const older = { name: 'globex', creationTimestamp: '2025-01-01T00:00:00Z', uid: 'uid-globex' };
const newer = { name: 'globex', creationTimestamp: '2027-01-01T00:00:00Z', uid: 'uid-globex' };

describe('ownership: what we may do to the Secret under our name', () => {
  const table: Array<{
    case: string;
    existing: V1Secret | undefined;
    claimant?: typeof older;
    want: string;
  }> = [
    { case: 'absent', existing: undefined, want: 'create' },
    {
      case: 'ours, current bytes',
      existing: { ...desired, metadata: { ...desired.metadata, resourceVersion: '3' } },
      want: 'none',
    },
    { case: 'ours, stale bytes', existing: secret(ours), want: 'update' },
    { case: 'a user Secret', existing: secret({}), want: 'conflict' },
    {
      case: 'our labels on an Opaque Secret',
      existing: secret(ours, { type: 'Opaque' }),
      want: 'conflict',
    },
    {
      case: 'handed over with the adopt annotation',
      existing: secret({}, {}, { 'regcred.dev/adopt': 'acme' }),
      want: 'update',
    },
    {
      case: 'adopt annotation for someone else',
      existing: secret({}, {}, { 'regcred.dev/adopt': 'globex' }),
      want: 'conflict',
    },
    {
      case: 'controlled by another controller, even if handed over',
      existing: secret(
        {},
        {
          metadata: {
            name: 'pull',
            namespace: 't',
            annotations: { 'regcred.dev/adopt': 'acme' },
            ownerReferences: [
              { apiVersion: 'v1', kind: 'Foo', name: 'f', uid: 'u', controller: true },
            ],
          },
        },
      ),
      want: 'conflict',
    },
    {
      case: 'an older credential still writes it',
      existing: secret(globexs),
      claimant: older,
      want: 'conflict',
    },
    {
      case: 'a newer credential writes it',
      existing: secret(globexs),
      claimant: newer,
      want: 'update',
    },
    { case: 'the other credential let go of it', existing: secret(globexs), want: 'update' },
  ];
  for (const row of table) {
    it(`${row.case}: ${row.want}`, () => {
      const decision = decideSecretWrite(row.existing, acme, desired, () => row.claimant);
      assert.equal(decision.action, row.want);
      if (decision.action === 'conflict') {
        assert.match(decision.message, /^Secret t\/pull /);
        assert.doesNotMatch(decision.message, /e30=/, 'never the data');
      }
      if (decision.action === 'update') {
        assert.equal(
          decision.object.metadata?.resourceVersion,
          row.existing?.metadata?.resourceVersion,
        );
        assert.equal(managedOwner(decision.object), 'acme');
        assert.equal(decision.object.metadata?.annotations?.['regcred.dev/adopt'], undefined);
      }
    });
  }

  it('says which credential keeps a contested Secret', () => {
    const decision = decideSecretWrite(secret(globexs), acme, desired, () => older);
    assert.deepEqual(decision, {
      action: 'conflict',
      message: 'Secret t/pull is managed by RegistryCredential globex, which is older and keeps it',
    });
  });

  it('recreates a Secret of ours that was made immutable (delete with its uid, then create)', () => {
    const frozen = secret(ours, {
      immutable: true,
      metadata: { name: 'pull', namespace: 't', uid: 'u-1', labels: ours },
    });
    assert.deepEqual(
      decideSecretWrite(frozen, acme, desired, () => undefined),
      {
        action: 'recreate',
        uid: 'u-1',
      },
    );
  });

  describe('isProvablyOurs: the only Secrets ever deleted', () => {
    const ref = {
      apiVersion: 'regcred.dev/v1alpha1',
      kind: 'RegistryCredential',
      name: 'acme',
      uid: 'uid-acme',
      controller: true,
    };
    const withRefs = (refs: object[], extra: Partial<V1Secret> = {}): V1Secret => ({
      ...secret(ours, extra),
      metadata: { name: 'pull', namespace: 't', labels: ours, ownerReferences: refs as never },
    });
    const rows: Array<[string, V1Secret, boolean]> = [
      ['type, labels and controller reference to the current uid', withRefs([ref]), true],
      ['labels only (a copy made by hand)', withRefs([]), false],
      [
        'a reference to an earlier credential of the same name',
        withRefs([{ ...ref, uid: 'uid-old' }]),
        false,
      ],
      ['a reference that is not the controller', withRefs([{ ...ref, controller: false }]), false],
      ['Opaque with our labels and reference', withRefs([ref], { type: 'Opaque' }), false],
      [
        'labelled for another credential',
        { ...withRefs([ref]), metadata: { ...withRefs([ref]).metadata, labels: globexs } },
        false,
      ],
    ];
    for (const [what, s, want] of rows) {
      it(`${what}: ${want ? 'ours' : 'left alone'}`, () => {
        assert.equal(isProvablyOurs(s, acme), want);
      });
    }
  });
});

describe('ownership: a Secret that carries only part of our marks', () => {
  // A tenant who copies a Secret of ours, or labels one by hand, seldom copies every mark. Only
  // both labels together make a Secret ours (or another credential's); anything less is
  // someone else's Secret: a conflict, never overwritten, unless it is handed over.
  const MANAGED_BY = 'app.kubernetes.io/managed-by';
  const CREDENTIAL = 'regcred.dev/credential';
  const rows: Array<[string, Record<string, string>]> = [
    ['only our credential label, naming us', { [CREDENTIAL]: 'acme' }],
    ['only a credential label naming another credential', { [CREDENTIAL]: 'globex' }],
    ['only the managed-by label', { [MANAGED_BY]: 'regcred-operator' }],
    [
      'the managed-by label and an empty credential label',
      { [MANAGED_BY]: 'regcred-operator', [CREDENTIAL]: '' },
    ],
  ];
  for (const [what, labels] of rows) {
    it(`${what}: a conflict, not overwritten`, () => {
      assert.deepEqual(
        decideSecretWrite(secret(labels), acme, desired, () => undefined),
        { action: 'conflict', message: 'Secret t/pull is not managed by regcred-operator' },
      );
    });

    it(`${what}, handed over with the adopt annotation: adopted`, () => {
      const handedOver = secret(labels, {}, { 'regcred.dev/adopt': 'acme' });
      const decision = decideSecretWrite(handedOver, acme, desired, () => undefined);
      assert.equal(decision.action, 'update');
      if (decision.action === 'update') assert.equal(managedOwner(decision.object), 'acme');
    });
  }
});

describe('ownership: the ownerReference on a Secret we write', () => {
  const ourRef = desired.metadata?.ownerReferences?.[0];

  it('an adopted Secret that had no owner gets exactly our ownerReference', () => {
    const handedOver = secret({}, {}, { 'regcred.dev/adopt': 'acme' });
    assert.equal(handedOver.metadata?.ownerReferences, undefined);
    const decision = decideSecretWrite(handedOver, acme, desired, () => undefined);
    assert.equal(decision.action, 'update');
    if (decision.action === 'update')
      assert.deepEqual(decision.object.metadata?.ownerReferences, [ourRef]);
  });

  it('our ownerReference with `controller` removed by hand is restored', () => {
    assert.ok(ourRef);
    const { controller: _dropped, ...withoutController } = ourRef;
    const edited: V1Secret = {
      ...desired,
      metadata: { ...desired.metadata, resourceVersion: '4', ownerReferences: [withoutController] },
    };
    const decision = decideSecretWrite(edited, acme, desired, () => undefined);
    assert.equal(decision.action, 'update');
    if (decision.action === 'update') {
      assert.deepEqual(decision.object.metadata?.ownerReferences, [ourRef]);
      assert.equal(decision.object.metadata?.resourceVersion, '4');
    }
  });
});
