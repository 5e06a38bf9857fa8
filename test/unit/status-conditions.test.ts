// What `kubectl describe` shows, condition by condition, for each way a reconcile can end:
// the exact status, reason and message of every condition, so a changed word or a dropped
// condition is a failing test, not a surprise for the reader of the status.
import assert from 'node:assert/strict';
import {
  boundedRegistries,
  computeStatus,
  ellipsize,
  failedStatus,
  type NamespaceOutcome,
  type ReconcileFindings,
  sameStatus,
  shadowingEvent,
  suspendedStatus,
} from '../../src/api/status.ts';
import {
  type Condition,
  MAX_STATUS_REGISTRIES,
  type RegistryCredential,
  type RegistryCredentialStatus,
  type RegistryStatus,
} from '../../src/api/types.ts';
import { CredentialError } from '../../src/credentials/errors.ts';

const NOW = new Date('2026-06-01T12:00:00Z');
const cred: RegistryCredential = {
  apiVersion: 'regcred.dev/v1alpha1',
  kind: 'RegistryCredential',
  metadata: { name: 'acme', generation: 7 },
  spec: { registries: [] },
};

const synced: NamespaceOutcome = { kind: 'synced', wrote: 0 };
const conflict: NamespaceOutcome = {
  kind: 'failed',
  reason: 'Conflict',
  message: 'taken',
  transient: false,
};
const forbidden: NamespaceOutcome = {
  kind: 'failed',
  reason: 'PartiallySynced',
  message: 'forbidden',
  transient: true,
};

function findings(
  outcomes: Record<string, NamespaceOutcome | undefined>,
  over: Partial<ReconcileFindings> = {},
): ReconcileFindings {
  const map = new Map<string, NamespaceOutcome>();
  for (const [ns, outcome] of Object.entries(outcomes)) if (outcome) map.set(ns, outcome);
  return {
    targets: new Set(Object.keys(outcomes)),
    outcomes: map,
    resolvedRegistries: 1,
    refreshErrors: [],
    registries: [{ server: 'r.example.com', source: 'basic' }],
    credentialError: undefined,
    cleanupErrors: [],
    namespaceExists: () => true,
    ...over,
  };
}

/** Each condition as "Type Status Reason: message (gen n)", by type: CredentialsReady, Ready, Synced. */
function shown(status: RegistryCredentialStatus): string[] {
  return (status.conditions ?? [])
    .map(
      (c: Condition) =>
        `${c.type} ${c.status} ${c.reason}: ${c.message} (gen ${c.observedGeneration})`,
    )
    .sort();
}

describe('status conditions, word for word', () => {
  it('suspended: Ready and Synced False Suspended, CredentialsReady as it was', () => {
    const before = computeStatus(cred, findings({ a: synced }), NOW);
    const status = suspendedStatus({ ...cred, status: before }, NOW);
    assert.deepEqual(shown(status), [
      'CredentialsReady True CredentialsResolved: 1 registry resolved (gen 7)',
      'Ready False Suspended: spec.suspend is true: nothing is written or removed (gen 7)',
      'Synced False Suspended: spec.suspend is true (gen 7)',
    ]);
    assert.equal(status.observedGeneration, 7);
  });

  it('suspended before any status: two conditions', () => {
    assert.deepEqual(shown(suspendedStatus(cred, NOW)), [
      'Ready False Suspended: spec.suspend is true: nothing is written or removed (gen 7)',
      'Synced False Suspended: spec.suspend is true (gen 7)',
    ]);
  });

  it('an unusable spec: all three False with its reason; Synced says Secrets are kept', () => {
    assert.deepEqual(shown(failedStatus(cred, 'InvalidSpec', 'bad selector', NOW)), [
      'CredentialsReady False InvalidSpec: bad selector (gen 7)',
      'Ready False InvalidSpec: bad selector (gen 7)',
      'Synced False InvalidSpec: not syncing until the spec is valid; existing Secrets are kept (gen 7)',
    ]);
  });

  it('credentials that did not resolve: Synced says existing Secrets are kept unchanged', () => {
    const status = computeStatus(
      cred,
      findings(
        { a: synced },
        { credentialError: new CredentialError('SourceNotFound', 'no Secret x') },
      ),
      NOW,
    );
    assert.deepEqual(shown(status), [
      'CredentialsReady False SourceNotFound: no Secret x (gen 7)',
      'Ready False SourceNotFound: no Secret x (gen 7)',
      'Synced False SourceNotFound: credentials are not ready; existing Secrets are kept unchanged (gen 7)',
    ]);
    assert.equal(status.syncedNamespaces, 0);
  });

  it('refresh failures: the first one, and how many more', () => {
    const one = new CredentialError('RefreshFailed', 'ecr down');
    const two = new CredentialError('RefreshFailed', 'gcp down');
    const message = (errors: CredentialError[]) =>
      shown(computeStatus(cred, findings({ a: synced }, { refreshErrors: errors }), NOW))[0];
    assert.equal(message([one]), 'CredentialsReady False RefreshFailed: ecr down (gen 7)');
    assert.equal(
      message([one, two]),
      'CredentialsReady False RefreshFailed: ecr down (and 1 more) (gen 7)',
    );
  });

  it('an unknown resolved count reads as 0 registries', () => {
    const status = computeStatus(
      cred,
      findings({ a: synced }, { resolvedRegistries: undefined }),
      NOW,
    );
    assert.equal(
      shown(status)[0],
      'CredentialsReady True CredentialsResolved: 0 registries resolved (gen 7)',
    );
  });

  it('conflicts: up to three named, then an ellipsis; other failures and cleanup counted', () => {
    const synced2 = shown(
      computeStatus(cred, findings({ a: synced, b: conflict, c: conflict }), NOW),
    );
    assert.equal(
      synced2[2],
      'Synced False Conflict: 1/3 namespaces synced; 2 in conflict (b, c) (gen 7)',
    );
    const four = shown(
      computeStatus(cred, findings({ a: conflict, b: conflict, c: conflict, d: conflict }), NOW),
    );
    assert.equal(
      four[2],
      'Synced False Conflict: 0/4 namespaces synced; 4 in conflict (a, b, c, …) (gen 7)',
    );
    const three = shown(
      computeStatus(cred, findings({ a: conflict, b: conflict, c: conflict }), NOW),
    );
    assert.equal(
      three[2],
      'Synced False Conflict: 0/3 namespaces synced; 3 in conflict (a, b, c) (gen 7)',
    );
    const mixed = shown(
      computeStatus(
        cred,
        findings({ a: synced, b: forbidden }, { cleanupErrors: ['x', 'y'] }),
        NOW,
      ),
    );
    assert.equal(
      mixed[2],
      'Synced False PartiallySynced: 1/2 namespaces synced; 1 failed and will be retried; cleanup failed in 2 namespaces (gen 7)',
    );
    const cleanupOnly = shown(
      computeStatus(cred, findings({ a: synced }, { cleanupErrors: ['x'] }), NOW),
    );
    assert.equal(
      cleanupOnly[2],
      'Synced False PartiallySynced: 1/1 namespace synced; cleanup failed in 1 namespace (gen 7)',
    );
    assert.equal(
      cleanupOnly[1],
      'Ready False PartiallySynced: 1/1 namespace synced; cleanup failed in 1 namespace (gen 7)',
    );
  });

  it('failed namespaces are listed by name, whatever order they came in', () => {
    const status = computeStatus(
      cred,
      findings({ c: conflict, a: forbidden, b: conflict, d: synced }),
      NOW,
    );
    assert.deepEqual(
      status.failedNamespaces?.map((f) => f.name),
      ['a', 'b', 'c'],
    );
    assert.equal(status.failedNamespaceCount, 3);
  });

  it('a target with no outcome yet is counted but neither synced nor failed', () => {
    const status = computeStatus(cred, findings({ a: synced, b: undefined }), NOW);
    assert.equal(status.targetNamespaces, 2);
    assert.equal(status.syncedNamespaces, 1);
    assert.equal(status.failedNamespaceCount, 0);
    assert.equal(status.failedNamespaces, undefined);
    assert.equal(shown(status)[2], 'Synced True Synced: 1/2 namespaces synced (gen 7)');
  });

  it('missing listed namespaces: none means no field and no words; listed ones deduplicated', () => {
    const exists = (ns: string) => ns !== 'gone' && ns !== 'lost';
    const none = computeStatus(
      { ...cred, spec: { namespaces: ['a'], registries: [] } },
      findings({}, { namespaceExists: exists }),
      NOW,
    );
    assert.equal(none.missingNamespaces, undefined);
    assert.equal(
      shown(none)[1],
      'Ready True NoTargets: no namespace matched spec.namespaceSelector or spec.namespaces (gen 7)',
    );
    const some = computeStatus(
      { ...cred, spec: { namespaces: ['lost', 'a', 'gone', 'lost'], registries: [] } },
      findings({}, { namespaceExists: exists }),
      NOW,
    );
    assert.deepEqual(some.missingNamespaces, ['gone', 'lost']);
  });

  it('Ready names how many namespaces hold the current Secret', () => {
    assert.equal(
      shown(computeStatus(cred, findings({ a: synced, b: synced }), NOW))[1],
      'Ready True Ready: 2 namespaces hold the current Secret (gen 7)',
    );
  });

  it('a credential that only selects by label never reports a named namespace as missing', () => {
    // Nothing in spec.namespaces, and no namespace exists at all.
    const status = computeStatus(
      { ...cred, spec: { namespaceSelector: { matchLabels: { tenant: 'acme' } }, registries: [] } },
      findings({}, { namespaceExists: () => false }),
      NOW,
    );
    assert.equal(status.missingNamespaces, undefined);
    assert.equal(
      shown(status)[1],
      'Ready True NoTargets: no namespace matched spec.namespaceSelector or spec.namespaces (gen 7)',
    );
  });

  it('missing listed namespaces: exactly three are named in full, a fourth makes an ellipsis', () => {
    const ready = (namespaces: string[]) =>
      shown(
        computeStatus(
          { ...cred, spec: { namespaces, registries: [] } },
          findings({}, { namespaceExists: () => false }),
          NOW,
        ),
      )[1];
    assert.equal(
      ready(['a', 'b', 'c']),
      'Ready True NoTargets: no namespace matched spec.namespaceSelector or spec.namespaces; spec.namespaces names 3 that do not exist (a, b, c) (gen 7)',
    );
    assert.equal(
      ready(['a', 'b', 'c', 'd']),
      'Ready True NoTargets: no namespace matched spec.namespaceSelector or spec.namespaces; spec.namespaces names 4 that do not exist (a, b, c, …) (gen 7)',
    );
  });

  it('a first reconcile whose credentials do not resolve lists no registries', () => {
    // No earlier status to keep registries from, and nothing resolved this time.
    const status = computeStatus(
      cred,
      findings(
        { a: synced },
        {
          registries: undefined,
          resolvedRegistries: undefined,
          credentialError: new CredentialError('SourceNotFound', 'no Secret x'),
        },
      ),
      NOW,
    );
    assert.equal('registries' in status, false);
    assert.equal(shown(status)[0], 'CredentialsReady False SourceNotFound: no Secret x (gen 7)');
  });

  it('no registries: no status.registries field', () => {
    const status = computeStatus(cred, findings({ a: synced }, { registries: [] }), NOW);
    assert.equal('registries' in status, false);
  });
});

describe('status.registries within bounds', () => {
  const entry = (i: number, over: Partial<RegistryStatus> = {}): RegistryStatus => ({
    server: `r${i}.example.com`,
    source: 'dockerConfig',
    ...over,
  });

  it('exactly the maximum: all kept in order; one more: the first imports dropped last', () => {
    const exact = Array.from({ length: MAX_STATUS_REGISTRIES }, (_, i) => entry(i));
    assert.deepEqual(boundedRegistries(exact), exact);
    const over = [...exact, entry(MAX_STATUS_REGISTRIES, { source: 'basic' })];
    const kept = boundedRegistries(over);
    assert.equal(kept.length, MAX_STATUS_REGISTRIES);
    assert.equal(kept[0]?.server, 'r0.example.com', 'the order is unchanged');
    assert.equal(kept.at(-1)?.server, `r${MAX_STATUS_REGISTRIES}.example.com`);
    assert.equal(kept.at(-2)?.server, `r${MAX_STATUS_REGISTRIES - 2}.example.com`);
  });

  it('CredentialsReady says how many of how many status lists, only when it lists fewer', () => {
    const all = Array.from({ length: MAX_STATUS_REGISTRIES + 2 }, (_, i) => entry(i));
    const message = (registries: RegistryStatus[]) =>
      shown(
        computeStatus(cred, findings({ a: synced }, { registries, resolvedRegistries: 1 }), NOW),
      )[0];
    assert.equal(
      message(all),
      `CredentialsReady True CredentialsResolved: 1 registry resolved; status.registries lists ${MAX_STATUS_REGISTRIES} of ${MAX_STATUS_REGISTRIES + 2} (gen 7)`,
    );
    assert.equal(
      message(all.slice(0, MAX_STATUS_REGISTRIES)),
      'CredentialsReady True CredentialsResolved: 1 registry resolved (gen 7)',
    );
  });

  it('ellipsize: a text of exactly max characters is kept, one more is cut to max', () => {
    assert.equal(ellipsize('abcd', 4), 'abcd');
    assert.equal(ellipsize('abcde', 4), 'abc…');
    assert.equal(Array.from(ellipsize('ééééé', 4)).length, 4);
  });
});

describe('sameStatus: equal as the API server stores it', () => {
  const base: RegistryCredentialStatus = {
    observedGeneration: 1,
    targetNamespaces: 2,
    registries: [{ server: 'a', source: 'basic' }],
  };

  it('ignores key order and absent fields, in nested objects too', () => {
    assert.ok(
      sameStatus(base, {
        registries: [{ source: 'basic', server: 'a', expiresAt: undefined }],
        targetNamespaces: 2,
        observedGeneration: 1,
      }),
    );
    assert.ok(sameStatus(undefined, {}));
  });

  it('tells a changed value, an added field, and a reordered list apart', () => {
    assert.ok(!sameStatus(base, { ...base, targetNamespaces: 3 }));
    assert.ok(!sameStatus(base, { ...base, syncedNamespaces: 0 }));
    assert.ok(!sameStatus(base, { ...base, registries: [{ server: 'b', source: 'basic' }] }));
    const two: RegistryStatus[] = [
      { server: 'a', source: 'basic' },
      { server: 'b', source: 'basic' },
    ];
    assert.ok(!sameStatus({ registries: two }, { registries: [...two].reverse() }));
    assert.ok(sameStatus({ registries: two }, { registries: [...two] }));
  });

  it('a field set to null or removed is the same as never set', () => {
    const withNull = JSON.parse(
      '{"observedGeneration":1,"targetNamespaces":2,"registries":[{"server":"a","source":"basic"}],"nextRefreshAt":null}',
    ) as RegistryCredentialStatus;
    assert.ok(sameStatus(withNull, base));
    assert.ok(!sameStatus(undefined, base));
  });
});

describe('the RegistryShadowed Event', () => {
  const status = (...shadowed: string[]): RegistryCredentialStatus => ({
    registries: [
      { server: 'explicit', source: 'basic' },
      ...shadowed.map(
        (server): RegistryStatus => ({ server, source: 'dockerConfig', shadowed: true }),
      ),
    ],
  });

  it('none shadowed: no Event, whatever was before', () => {
    assert.equal(shadowingEvent(status('a'), status()), undefined);
    assert.equal(shadowingEvent(undefined, status()), undefined);
  });

  it('only a new key shadowed makes an Event; the same keys again do not', () => {
    assert.equal(shadowingEvent(status('a', 'b'), status('a', 'b')), undefined);
    assert.equal(shadowingEvent(status('a', 'b'), status('b')), undefined);
    assert.equal(
      shadowingEvent(status('a'), status('a', 'b'))?.message,
      '2 imported keys left out of the Secret: the kubelet takes them for a registry another entry names (a, b); see status.registries',
    );
    assert.equal(
      shadowingEvent(undefined, status('a', 'b', 'c'))?.message,
      '3 imported keys left out of the Secret: the kubelet takes them for a registry another entry names (a, b, c); see status.registries',
    );
    assert.equal(
      shadowingEvent(undefined, status('a', 'b', 'c', 'd'))?.message,
      '4 imported keys left out of the Secret: the kubelet takes them for a registry another entry names (a, b, c, …); see status.registries',
    );
  });
});
