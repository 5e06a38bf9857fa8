import assert from 'node:assert/strict';
import { findCondition } from '../../src/api/conditions.ts';
import {
  computeStatus,
  failedStatus,
  type NamespaceOutcome,
  type ReconcileFindings,
  sameStatus,
  shadowingEvent,
  suspendedStatus,
} from '../../src/api/status.ts';
import {
  MAX_FAILED_NAMESPACES,
  MAX_MISSING_NAMESPACES,
  MAX_STATUS_REGISTRIES,
  MAX_STATUS_SERVER_LENGTH,
  type RegistryCredential,
} from '../../src/api/types.ts';
import { transitionEvents } from '../../src/controller/status-writer.ts';
import { CredentialError } from '../../src/credentials/errors.ts';

const NOW = new Date('2026-06-01T12:00:00Z');
const cred: RegistryCredential = {
  apiVersion: 'regcred.dev/v1alpha1',
  kind: 'RegistryCredential',
  metadata: { name: 'acme', generation: 4 },
  spec: { namespaces: ['a'], registries: [] },
};

function findings(over: Partial<ReconcileFindings> = {}): ReconcileFindings {
  return {
    targets: new Set(['a', 'b', 'c']),
    outcomes: new Map<string, NamespaceOutcome>([
      ['a', { kind: 'synced', wrote: 1 }],
      ['b', { kind: 'synced', wrote: 0 }],
      ['c', { kind: 'synced', wrote: 0 }],
    ]),
    resolvedRegistries: 1,
    refreshErrors: [],
    registries: [{ server: 'r.example.com', source: 'basic' }],
    credentialError: undefined,
    cleanupErrors: [],
    namespaceExists: () => true,
    ...over,
  };
}

function conditions(f: ReconcileFindings) {
  const status = computeStatus(cred, f, NOW);
  const pick = (t: 'Ready' | 'CredentialsReady' | 'Synced') => {
    const c = findCondition(status.conditions, t);
    return `${c?.status} ${c?.reason}`;
  };
  return { status, ready: pick('Ready'), creds: pick('CredentialsReady'), synced: pick('Synced') };
}

describe('status: what a reconcile reports', () => {
  it('all synced: Ready True, counts, generation observed', () => {
    const { status, ready, creds, synced } = conditions(findings());
    assert.equal(ready, 'True Ready');
    assert.equal(creds, 'True CredentialsResolved');
    assert.equal(synced, 'True Synced');
    assert.equal(status.observedGeneration, 4);
    assert.equal(status.targetNamespaces, 3);
    assert.equal(status.syncedNamespaces, 3);
    assert.equal(
      findCondition(status.conditions, 'Ready')?.lastTransitionTime,
      '2026-06-01T12:00:00Z',
    );
  });

  it('no targets: Ready True with NoTargets, so a selector typo is visible', () => {
    const { ready, status } = conditions(findings({ targets: new Set(), outcomes: new Map() }));
    assert.equal(ready, 'True NoTargets');
    assert.match(findCondition(status.conditions, 'Ready')?.message ?? '', /no namespace matched/);
  });

  it('only conflicts: Conflict; a retried failure among them: PartiallySynced', () => {
    const conflict: NamespaceOutcome = {
      kind: 'failed',
      reason: 'Conflict',
      message: 'm',
      transient: false,
    };
    const failure: NamespaceOutcome = {
      kind: 'failed',
      reason: 'PartiallySynced',
      message: 'x',
      transient: true,
    };
    const onlyConflict = conditions(
      findings({
        outcomes: new Map<string, NamespaceOutcome>([
          ['a', conflict],
          ['b', { kind: 'synced', wrote: 0 }],
          ['c', { kind: 'synced', wrote: 0 }],
        ]),
      }),
    );
    assert.equal(onlyConflict.ready, 'False Conflict');
    assert.equal(onlyConflict.status.syncedNamespaces, 2);
    assert.deepEqual(onlyConflict.status.failedNamespaces, [
      { name: 'a', reason: 'Conflict', message: 'm' },
    ]);
    const mixed = conditions(
      findings({
        outcomes: new Map<string, NamespaceOutcome>([
          ['a', conflict],
          ['b', failure],
          ['c', { kind: 'synced', wrote: 0 }],
        ]),
      }),
    );
    assert.equal(mixed.synced, 'False PartiallySynced');
    assert.match(
      findCondition(mixed.status.conditions, 'Synced')?.message ?? '',
      /1\/3 namespaces synced; 1 in conflict \(a\); 1 failed and will be retried/,
    );
  });

  it('a namespace gone under us is not counted as a target', () => {
    const { status } = conditions(
      findings({
        outcomes: new Map<string, NamespaceOutcome>([
          ['a', { kind: 'skipped' }],
          ['b', { kind: 'synced', wrote: 0 }],
          ['c', { kind: 'synced', wrote: 0 }],
        ]),
      }),
    );
    assert.equal(status.targetNamespaces, 2);
    assert.equal(status.syncedNamespaces, 2);
  });

  it('credentials that did not resolve: every condition False with the reason, nothing synced', () => {
    const { ready, creds, synced, status } = conditions(
      findings({
        credentialError: new CredentialError('SourceNotFound', 'Secret regcred-system/x not found'),
        resolvedRegistries: undefined,
      }),
    );
    assert.equal(ready, 'False SourceNotFound');
    assert.equal(creds, 'False SourceNotFound');
    assert.equal(synced, 'False SourceNotFound');
    assert.equal(status.syncedNamespaces, 0);
  });

  it('a failed refresh with the last good token still served: CredentialsReady False RefreshFailed', () => {
    const { ready, creds, synced, status } = conditions(
      findings({
        refreshErrors: [
          new CredentialError('RefreshFailed', 'ecr: throttled'),
          new CredentialError('RefreshFailed', 'gcp: 503'),
        ],
      }),
    );
    assert.equal(creds, 'False RefreshFailed');
    assert.equal(ready, 'False RefreshFailed');
    assert.equal(synced, 'True Synced');
    assert.match(
      findCondition(status.conditions, 'CredentialsReady')?.message ?? '',
      /\(and 1 more\)$/,
    );
  });

  it('caps failedNamespaces at 20 entries, sorted by name', () => {
    const targets = new Set<string>();
    const outcomes = new Map<string, NamespaceOutcome>();
    for (let i = 30; i > 0; i--) {
      const name = `ns-${String(i).padStart(2, '0')}`;
      targets.add(name);
      outcomes.set(name, { kind: 'failed', reason: 'Conflict', message: 'm', transient: false });
    }
    const { status } = conditions(findings({ targets, outcomes }));
    assert.equal(status.failedNamespaces?.length, 20);
    assert.equal(status.failedNamespaces?.[0]?.name, 'ns-01');
  });

  it('counts every failed namespace in failedNamespaceCount while the list stays at 20', () => {
    const targets = new Set<string>();
    const outcomes = new Map<string, NamespaceOutcome>();
    for (let i = 0; i < 45; i++) {
      targets.add(`ns-${i}`);
      outcomes.set(`ns-${i}`, {
        kind: 'failed',
        reason: 'Conflict',
        message: 'm',
        transient: false,
      });
    }
    const { status } = conditions(findings({ targets, outcomes }));
    assert.equal(status.failedNamespaceCount, 45);
    assert.equal(status.failedNamespaces?.length, MAX_FAILED_NAMESPACES);
    assert.equal(conditions(findings()).status.failedNamespaceCount, 0);
  });

  it('bounds a failed namespace message, however long the API error it came from', () => {
    const outcomes = new Map<string, NamespaceOutcome>([
      [
        'a',
        { kind: 'failed', reason: 'PartiallySynced', message: 'x'.repeat(40_000), transient: true },
      ],
    ]);
    const { status } = conditions(findings({ targets: new Set(['a']), outcomes }));
    const message = status.failedNamespaces?.[0]?.message ?? '';
    assert.ok(message.length <= 512, `message of ${message.length} characters`);
    assert.ok(message.endsWith('…'));
  });

  it('lists names in spec.namespaces that do not exist, sorted, at most 20', () => {
    const names = Array.from({ length: 25 }, (_, i) => `missing-${String(i).padStart(2, '0')}`);
    const withNames: RegistryCredential = {
      ...cred,
      spec: { ...cred.spec, namespaces: ['a', ...names] },
    };
    const status = computeStatus(withNames, findings({ namespaceExists: (ns) => ns === 'a' }), NOW);
    assert.equal(status.missingNamespaces?.length, MAX_MISSING_NAMESPACES);
    assert.equal(status.missingNamespaces?.[0], 'missing-00');
    assert.equal(computeStatus(withNames, findings(), NOW).missingNamespaces, undefined);
  });

  it('says which listed namespaces do not exist when nothing is targeted (a typo shows)', () => {
    const typo: RegistryCredential = {
      ...cred,
      spec: { ...cred.spec, namespaces: ['shared-tols'] },
    };
    const status = computeStatus(
      typo,
      findings({ targets: new Set(), outcomes: new Map(), namespaceExists: () => false }),
      NOW,
    );
    const ready = findCondition(status.conditions, 'Ready');
    assert.equal(ready?.reason, 'NoTargets');
    assert.match(ready?.message ?? '', /1 that does not exist \(shared-tols\)/);
    assert.deepEqual(status.missingNamespaces, ['shared-tols']);
  });

  it('cuts a registry key longer than the schema allows with an ellipsis', () => {
    const long = `registry.example.com/${'é'.repeat(600)}`;
    const { status } = conditions(
      findings({ registries: [{ server: long, source: 'dockerConfig' }] }),
    );
    const server = status.registries?.[0]?.server ?? '';
    assert.equal(Array.from(server).length, MAX_STATUS_SERVER_LENGTH);
    assert.ok(server.endsWith('…'));
    assert.ok(long.startsWith(server.slice(0, -1)));
  });

  it('caps status.registries below the schema limit, keeping explicit and shadowed ones, with a count', () => {
    const imported = Array.from({ length: 1100 }, (_, i) => ({
      server: `r${i}.example.com`,
      source: 'dockerConfig' as const,
    }));
    const all = [
      ...imported.slice(0, 600),
      { server: 'r5.example.com:5000', source: 'dockerConfig' as const, shadowed: true },
      ...imported.slice(600),
      { server: '123456789012.dkr.ecr.eu-west-1.amazonaws.com', source: 'ecr' as const },
    ];
    const { status } = conditions(findings({ registries: all, resolvedRegistries: all.length }));
    const listed = status.registries ?? [];
    assert.equal(listed.length, MAX_STATUS_REGISTRIES);
    assert.ok(listed.some((r) => r.source === 'ecr'));
    assert.ok(listed.some((r) => r.shadowed === true));
    assert.match(
      findCondition(status.conditions, 'CredentialsReady')?.message ?? '',
      new RegExp(`status.registries lists ${MAX_STATUS_REGISTRIES} of ${all.length}`),
    );
  });

  it('says in CredentialsReady how many imported keys were left out as shadowed', () => {
    const { status } = conditions(
      findings({
        registries: [
          { server: 'registry.example.com:5000', source: 'basic' },
          {
            server: 'https://registry.example.com:5000/v2/',
            source: 'dockerConfig',
            shadowed: true,
          },
        ],
      }),
    );
    assert.match(
      findCondition(status.conditions, 'CredentialsReady')?.message ?? '',
      /^1 registry resolved; 1 imported key left out: the kubelet takes it for/,
    );
    assert.equal(status.registries?.[1]?.shadowed, true);
  });

  it('a newly shadowed imported key gets a Warning Event once', () => {
    const shadowed = {
      registries: [
        { server: 'registry.example.com:5000', source: 'basic' as const },
        {
          server: 'https://registry.example.com:5000/v2/',
          source: 'dockerConfig' as const,
          shadowed: true,
        },
      ],
    };
    const event = shadowingEvent({}, shadowed);
    assert.equal(event?.type, 'Warning');
    assert.equal(event?.reason, 'RegistryShadowed');
    assert.match(
      event?.message ?? '',
      /^1 imported key left out of the Secret: the kubelet takes it for .*registry\.example\.com:5000\/v2\//,
    );
    assert.equal(shadowingEvent(shadowed, shadowed), undefined);
    assert.equal(shadowingEvent(shadowed, { registries: [] }), undefined);
  });

  it('an unchanged reconcile produces the same status (no write)', () => {
    const first = computeStatus(cred, findings(), NOW);
    const again = computeStatus(
      { ...cred, status: first },
      findings(),
      new Date('2026-06-01T13:00:00Z'),
    );
    assert.ok(sameStatus(first, again));
    assert.ok(!sameStatus(first, { ...again, syncedNamespaces: 2 }));
  });

  it('suspended or invalid: no counts or next refresh left over from when it synced', () => {
    const synced = computeStatus(cred, findings(), NOW);
    synced.nextRefreshAt = '2026-06-01T13:00:00Z';
    synced.lastRefreshRequest = 'r1';
    for (const status of [
      suspendedStatus({ ...cred, status: synced }, NOW),
      failedStatus({ ...cred, status: synced }, 'InvalidSpec', 'bad selector', NOW),
    ]) {
      assert.equal(status.targetNamespaces, undefined);
      assert.equal(status.syncedNamespaces, undefined);
      assert.equal(status.nextRefreshAt, undefined);
      assert.equal(status.failedNamespaces, undefined);
      assert.deepEqual(status.registries, synced.registries, 'registries stay');
      assert.equal(status.lastRefreshRequest, 'r1');
    }
  });
});

describe('status and Event messages read as sentences (one namespace, two namespaces)', () => {
  /** `n` synced targets named t0…, `failed` more failing with `reason`. */
  function counts(n: number, failed = 0, reason: 'Conflict' | 'PartiallySynced' = 'Conflict') {
    const names = Array.from({ length: n + failed }, (_, i) => `t${i}`);
    return findings({
      targets: new Set(names),
      outcomes: new Map<string, NamespaceOutcome>(
        names.map((ns, i): [string, NamespaceOutcome] => [
          ns,
          i < n
            ? { kind: 'synced', wrote: 0 }
            : { kind: 'failed', reason, message: 'm', transient: reason !== 'Conflict' },
        ]),
      ),
      resolvedRegistries: n,
    });
  }
  const message = (f: ReconcileFindings, type: 'Ready' | 'CredentialsReady' | 'Synced') =>
    findCondition(computeStatus(cred, f, NOW).conditions, type)?.message;

  const table: Array<[string, () => string | undefined, string]> = [
    ['Ready, 1', () => message(counts(1), 'Ready'), '1 namespace holds the current Secret'],
    ['Ready, 2', () => message(counts(2), 'Ready'), '2 namespaces hold the current Secret'],
    ['CredentialsReady, 1', () => message(counts(1), 'CredentialsReady'), '1 registry resolved'],
    ['CredentialsReady, 2', () => message(counts(2), 'CredentialsReady'), '2 registries resolved'],
    ['CredentialsReady, 0', () => message(counts(0), 'CredentialsReady'), '0 registries resolved'],
    ['Synced, 1/1', () => message(counts(1), 'Synced'), '1/1 namespace synced'],
    ['Synced, 2/2', () => message(counts(2), 'Synced'), '2/2 namespaces synced'],
    [
      'Synced, a conflict',
      () => message(counts(0, 1), 'Synced'),
      '0/1 namespace synced; 1 in conflict (t0)',
    ],
    [
      'cleanup failing in 1',
      () => message({ ...counts(2), cleanupErrors: ['x'] }, 'Synced'),
      '2/2 namespaces synced; cleanup failed in 1 namespace',
    ],
    [
      'cleanup failing in 2',
      () =>
        message(
          {
            ...counts(2),
            cleanupErrors: ['x', 'y'],
          },
          'Synced',
        ),
      '2/2 namespaces synced; cleanup failed in 2 namespaces',
    ],
    [
      'Event: Conflict in 1',
      () => transitionEvents({}, computeStatus(cred, counts(1, 1), NOW))[1]?.message,
      'Conflict in 1 namespace: t1',
    ],
    [
      'Event: Conflict in 2',
      () => transitionEvents({}, computeStatus(cred, counts(1, 2), NOW))[1]?.message,
      'Conflict in 2 namespaces: t1, t2',
    ],
    [
      'Event: Ready with 1',
      () => transitionEvents({}, computeStatus(cred, counts(1), NOW))[0]?.message,
      '1 namespace holds the current Secret',
    ],
  ];
  for (const [what, actual, expected] of table) {
    it(`${what}: "${expected}"`, () => assert.equal(actual(), expected));
  }

  it('a missing listed namespace: "names 1 that does not exist", "names 2 that do not exist"', () => {
    const missing = (names: string[]) =>
      computeStatus(
        { ...cred, spec: { ...cred.spec, namespaces: names } },
        findings({ targets: new Set(), outcomes: new Map(), namespaceExists: () => false }),
        NOW,
      );
    assert.match(
      findCondition(missing(['x']).conditions, 'Ready')?.message ?? '',
      /names 1 that does not exist \(x\)$/,
    );
    assert.match(
      findCondition(missing(['x', 'y']).conditions, 'Ready')?.message ?? '',
      /names 2 that do not exist \(x, y\)$/,
    );
  });

  it('shadowed imported keys: "1 imported key … takes it", "2 imported keys … takes them"', () => {
    const shadowed = (n: number) => ({
      registries: [
        { server: 'registry.example.com:5000', source: 'basic' as const },
        ...Array.from({ length: n }, (_, i) => ({
          server: `https://registry.example.com:5000/v${i + 1}/`,
          source: 'dockerConfig' as const,
          shadowed: true,
        })),
      ],
    });
    assert.match(
      shadowingEvent({}, shadowed(1))?.message ?? '',
      /^1 imported key left out of the Secret: the kubelet takes it for a registry/,
    );
    assert.match(
      shadowingEvent({}, shadowed(2))?.message ?? '',
      /^2 imported keys left out of the Secret: the kubelet takes them for a registry/,
    );
    assert.match(
      message({ ...findings(), registries: shadowed(2).registries }, 'CredentialsReady') ?? '',
      /; 2 imported keys left out: the kubelet takes them for a registry/,
    );
  });
});
