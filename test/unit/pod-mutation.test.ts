import assert from 'node:assert/strict';
import type { V1Pod, V1Secret } from '@kubernetes/client-node';
import fc from 'fast-check';
import {
  API_VERSION,
  CREDENTIAL_LABEL,
  IGNORE_ANNOTATION,
  KIND,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  type RegistryCredential,
  type RegistryCredentialSpec,
} from '../../src/api/types.ts';
import { type NamespaceInfo, selectedServiceAccounts } from '../../src/controller/selection.ts';
import { DOCKER_CONFIG_JSON_TYPE } from '../../src/credentials/dockerconfigjson.ts';
import {
  applicableCredentials,
  type JsonPatchOperation,
  type PodMutationInput,
  podMutation,
  selectsServiceAccount,
} from '../../src/webhook/pod-mutation.ts';
import {
  PullPolicyObservations,
  pullIsolationCondition,
} from '../../src/webhook/pull-isolation.ts';

function ns(name: string, labels: Record<string, string> = {}, annotations = {}): NamespaceInfo {
  return { name, labels, annotations, terminating: false };
}

function cred(
  name: string,
  spec: Partial<RegistryCredentialSpec>,
  created = '2026-01-01T00:00:00Z',
): RegistryCredential {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name, uid: `uid-${name}`, creationTimestamp: new Date(created) },
    spec: {
      namespaceSelector: { matchLabels: { tenant: 'acme' } },
      registries: [{ server: 'registry.example.com', basic: { secretRef: { name: 'src' } } }],
      ...spec,
    },
  };
}

function pod(spec: Partial<NonNullable<V1Pod['spec']>> = {}): V1Pod {
  return {
    metadata: { name: 'app', namespace: 'team-a' },
    spec: {
      containers: [
        { name: 'app', image: 'registry.example.com/app:1', imagePullPolicy: 'IfNotPresent' },
      ],
      ...spec,
    },
  };
}

const acme = ns('team-a', { tenant: 'acme' });

function mutate(input: Partial<PodMutationInput> & { credentials: RegistryCredential[] }) {
  return podMutation({
    pod: pod(),
    namespace: acme,
    unmanagedSecret: () => null,
    ...input,
  });
}

/** RFC 6902 `add`, as the API server applies it (only what the webhook emits). */
function applyPatch(doc: V1Pod, ops: readonly JsonPatchOperation[]): V1Pod {
  const out = structuredClone(doc) as unknown as Record<string, unknown>;
  for (const op of ops) {
    const parts = op.path.split('/').slice(1);
    const last = parts.pop() ?? '';
    let target: Record<string, unknown> | unknown[] = out;
    for (const part of parts) {
      target = (target as Record<string, unknown>)[part] as Record<string, unknown>;
      assert.ok(target !== undefined, `${op.path}: no parent`);
    }
    if (Array.isArray(target)) {
      if (last === '-') target.push(op.value);
      else target.splice(Number(last), 0, op.value);
    } else {
      target[last] = op.value;
    }
  }
  return out as unknown as V1Pod;
}

/** Only the host matters in these tests; the real matcher is the kubelet keyring's. */
const hostMatcher = (image: string, servers: readonly string[]) =>
  servers.some((server) => image.startsWith(`${server}/`));

describe('the Pod webhook patch', () => {
  it('adds the Secret of a credential that targets the namespace and selects default', () => {
    const result = mutate({ credentials: [cred('acme', {})] });
    assert.deepEqual(result.patch, [
      { op: 'add', path: '/spec/imagePullSecrets', value: [{ name: 'acme' }] },
    ]);
    assert.deepEqual(result.addedSecrets, ['acme']);
  });

  it('appends after the entries the ServiceAccount admission plugin copied, never reordering or removing them', () => {
    const before = pod({ imagePullSecrets: [{ name: 'mine' }, { name: 'theirs' }] });
    const result = mutate({
      pod: before,
      credentials: [cred('acme', { secretName: 'acme-pull' })],
    });
    assert.deepEqual(result.patch, [
      { op: 'add', path: '/spec/imagePullSecrets/-', value: { name: 'acme-pull' } },
    ]);
    assert.deepEqual(applyPatch(before, result.patch).spec?.imagePullSecrets, [
      { name: 'mine' },
      { name: 'theirs' },
      { name: 'acme-pull' },
    ]);
  });

  it('leaves a Pod that already lists the Secret unchanged', () => {
    const result = mutate({
      pod: pod({ imagePullSecrets: [{ name: 'acme' }] }),
      credentials: [cred('acme', {})],
    });
    assert.deepEqual(result.patch, []);
  });

  it('leaves Pods alone in namespaces the credential does not target, ignored ones, and system ones', () => {
    const c = [cred('acme', {})];
    assert.deepEqual(
      mutate({ namespace: ns('team-b', { tenant: 'other' }), credentials: c }).patch,
      [],
    );
    assert.deepEqual(
      mutate({
        namespace: ns('team-a', { tenant: 'acme' }, { [IGNORE_ANNOTATION]: 'true' }),
        credentials: c,
      }).patch,
      [],
    );
    assert.deepEqual(
      mutate({
        namespace: ns('kube-system', { tenant: 'acme' }),
        credentials: [cred('acme', { namespaceSelector: {} })],
      }).patch,
      [],
    );
  });

  it('follows spec.serviceAccounts: the Pod runs as default unless it names another', () => {
    const onlyBuilder = [cred('acme', { serviceAccounts: ['builder'] })];
    assert.deepEqual(mutate({ credentials: onlyBuilder }).patch, []);
    assert.equal(
      mutate({ pod: pod({ serviceAccountName: 'builder' }), credentials: onlyBuilder }).patch
        .length,
      1,
    );
    const every = [cred('acme', { serviceAccounts: ['*'] })];
    assert.equal(
      mutate({ pod: pod({ serviceAccountName: 'x' }), credentials: every }).patch.length,
      1,
    );
    assert.deepEqual(mutate({ credentials: [cred('acme', { serviceAccounts: [] })] }).patch, []);
  });

  it('skips suspended, deleted and invalid credentials', () => {
    const deleted = cred('gone', {});
    deleted.metadata.deletionTimestamp = new Date();
    const invalid = cred('bad', {
      namespaceSelector: { matchExpressions: [{ key: 'tenant', operator: 'Bogus' }] },
    });
    const result = mutate({ credentials: [cred('paused', { suspend: true }), deleted, invalid] });
    assert.deepEqual(result.patch, []);
  });

  it("adds nothing where someone else's Secret holds the name (the reconciler's conflict)", () => {
    const theirs: V1Secret = {
      metadata: { name: 'acme', namespace: 'team-a' },
      type: 'Opaque',
    };
    assert.deepEqual(
      mutate({ credentials: [cred('acme', {})], unmanagedSecret: () => theirs }).patch,
      [],
    );
    // A Secret another credential manages is that credential's; ours still applies.
    const managed: V1Secret = {
      metadata: {
        name: 'acme',
        namespace: 'team-a',
        labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [CREDENTIAL_LABEL]: 'older' },
      },
      type: DOCKER_CONFIG_JSON_TYPE,
    };
    assert.equal(
      mutate({ credentials: [cred('acme', {})], unmanagedSecret: () => managed }).patch.length,
      1,
    );
  });

  it('adds each Secret once, oldest credential first, when several apply', () => {
    const result = mutate({
      credentials: [
        cred('young', {}, '2026-03-01T00:00:00Z'),
        cred('old', {}, '2026-01-01T00:00:00Z'),
        cred('same-name', { secretName: 'old' }, '2026-02-01T00:00:00Z'),
      ],
    });
    assert.deepEqual(result.addedSecrets, ['old', 'young']);
    assert.deepEqual(result.credentials, ['old', 'same-name', 'young']);
  });

  it('sets imagePullPolicy Always on containers of the registries of a credential that asks for it', () => {
    const before = pod({
      initContainers: [
        { name: 'init', image: 'registry.example.com/init:1', imagePullPolicy: 'IfNotPresent' },
      ],
      containers: [
        { name: 'app', image: 'registry.example.com/app:1', imagePullPolicy: 'IfNotPresent' },
        { name: 'side', image: 'docker.io/library/busybox:1', imagePullPolicy: 'IfNotPresent' },
        { name: 'pinned', image: 'registry.example.com/x:1', imagePullPolicy: 'Always' },
      ],
    });
    const result = mutate({
      pod: before,
      credentials: [cred('acme', { imagePullPolicy: 'Always' })],
      matchesImage: hostMatcher,
    });
    const after = applyPatch(before, result.patch);
    assert.deepEqual(
      after.spec?.containers.map((c) => c.imagePullPolicy),
      ['Always', 'IfNotPresent', 'Always'],
    );
    assert.equal(after.spec?.initContainers?.[0]?.imagePullPolicy, 'Always');
    assert.deepEqual(
      result.privateImages.map((u) => [u.container, u.arrivedWith, u.setAlways]),
      [
        ['init', 'IfNotPresent', true],
        ['app', 'IfNotPresent', true],
        ['pinned', 'Always', false],
      ],
    );
  });

  it('sets Always in namespaces the credential does not target too: those are the tenants without it', () => {
    const result = mutate({
      namespace: ns('team-b', { tenant: 'other' }),
      credentials: [cred('acme', { imagePullPolicy: 'Always' })],
      matchesImage: hostMatcher,
    });
    assert.deepEqual(result.addedSecrets, []);
    assert.deepEqual(result.patch, [
      { op: 'add', path: '/spec/containers/0/imagePullPolicy', value: 'Always' },
    ]);
  });

  it('without the policy, reports private images arriving IfNotPresent and changes no policy', () => {
    const result = mutate({ credentials: [cred('acme', {})], matchesImage: hostMatcher });
    assert.ok(result.patch.every((op) => !op.path.endsWith('imagePullPolicy')));
    assert.deepEqual(
      result.privateImages.map((u) => [u.credential, u.arrivedWith, u.setAlways]),
      [['acme', 'IfNotPresent', false]],
    );
  });

  it('never drops, reorders or changes an existing entry, whatever the Pod already lists', () => {
    const names = fc.constantFrom('acme', 'mine', 'theirs', 'acme-pull', '');
    fc.assert(
      fc.property(
        fc.option(
          fc.array(
            names.map((name) => ({ name })),
            { maxLength: 6 },
          ),
          { nil: undefined },
        ),
        fc.subarray(['acme', 'acme-pull']),
        (existing, secretNames) => {
          const before = pod(existing === undefined ? {} : { imagePullSecrets: existing });
          const creds = secretNames.map((name, i) =>
            cred(`c${i}`, { secretName: name }, `2026-01-0${i + 1}T00:00:00Z`),
          );
          const result = mutate({ pod: before, credentials: creds });
          const after = applyPatch(before, result.patch).spec?.imagePullSecrets ?? [];
          const kept = existing ?? [];
          assert.deepEqual(after.slice(0, kept.length), kept);
          for (const name of secretNames) {
            assert.ok(after.some((entry) => entry.name === name));
          }
          const added = after.slice(kept.length).map((entry) => entry.name);
          assert.equal(new Set(added).size, added.length);
          assert.ok(result.patch.every((op) => op.op === 'add'));
        },
      ),
    );
  });
});

describe('the decision, remembered per credential object', () => {
  it("selects a ServiceAccount exactly when the reconciler's selectedServiceAccounts does", () => {
    const names = fc.constantFrom('default', 'builder', 'x', '*', '', 'Default');
    fc.assert(
      fc.property(
        fc.option(fc.array(names, { maxLength: 5 }), { nil: undefined }),
        names,
        (list, sa) => {
          const spec = cred('acme', list === undefined ? {} : { serviceAccounts: list }).spec;
          assert.equal(
            selectsServiceAccount(spec, sa),
            selectedServiceAccounts(spec, [sa]).length > 0,
          );
        },
      ),
    );
  });

  it('follows a credential whose selector changed, and one that became invalid or valid again', () => {
    const other = ns('team-b', { tenant: 'other' });
    const v1 = cred('acme', {});
    const applies = (c: RegistryCredential, n: NamespaceInfo) =>
      applicableCredentials(n, 'default', [c], () => null).length === 1;
    assert.equal(applies(v1, acme), true);
    assert.equal(applies(v1, other), false);
    // An update arrives as a new object (cached objects are never mutated) ...
    const v2 = {
      ...v1,
      spec: { ...v1.spec, namespaceSelector: { matchLabels: { tenant: 'other' } } },
    };
    assert.equal(applies(v2, acme), false);
    assert.equal(applies(v2, other), true);
    const invalid = {
      ...v1,
      spec: {
        ...v1.spec,
        namespaceSelector: { matchExpressions: [{ key: 'tenant', operator: 'Bogus' }] },
      },
    };
    assert.equal(applies(invalid, acme), false);
    assert.equal(applies(invalid, other), false);
    // ... and the old objects keep their own answers.
    assert.equal(applies(v1, acme), true);
    assert.equal(applies(v2, other), true);
    // A spec whose selector or names were replaced in place is compiled again all the same.
    const named = cred('named', {});
    assert.equal(applies(named, other), false);
    named.spec.namespaces = ['team-b'];
    assert.equal(applies(named, other), true);
    named.spec.namespaceSelector = { matchLabels: { tenant: 'nobody' } };
    assert.equal(applies(named, acme), false);
  });

  it('matches images against servers a credential imports in its status, per credential object', () => {
    const base = cred('acme', { imagePullPolicy: 'Always', registries: [] });
    const imported = {
      ...base,
      status: { registries: [{ server: 'registry.example.com' }] },
    } as RegistryCredential;
    const policy = (c: RegistryCredential) =>
      mutate({ credentials: [c], matchesImage: hostMatcher }).patch.filter((op) =>
        op.path.endsWith('/imagePullPolicy'),
      ).length;
    assert.equal(policy(base), 0);
    assert.equal(policy(imported), 1);
    assert.equal(policy(base), 0);
  });
});

describe('the PullIsolation condition', () => {
  const acme = cred('acme', {});
  const uses = (...arrived: Array<'Always' | 'IfNotPresent'>) =>
    arrived.map((arrivedWith) => ({
      credential: 'acme',
      list: 'containers' as const,
      container: 'app',
      arrivedWith,
      setAlways: false,
    }));

  it('is True when the credential asks for Always, whatever Pods arrive with', () => {
    const c = pullIsolationCondition(cred('acme', { imagePullPolicy: 'Always' }), {
      protected: 0,
      unprotected: 5,
    });
    assert.deepEqual([c.type, c.status, c.reason], ['PullIsolation', 'True', 'PullPolicyAlways']);
  });

  it('is Unknown before any Pod using the registries was admitted', () => {
    const observations = new PullPolicyObservations();
    const c = pullIsolationCondition(acme, observations.of('acme'));
    assert.deepEqual([c.status, c.reason], ['Unknown', 'NoPodsSeen']);
  });

  it('is True when every such Pod arrived with Always (AlwaysPullImages), False once one arrives IfNotPresent', () => {
    const observations = new PullPolicyObservations();
    observations.observe(uses('Always', 'Always'));
    assert.deepEqual([pullIsolationCondition(acme, observations.of('acme')).status], ['True']);
    observations.observe(uses('IfNotPresent'));
    const c = pullIsolationCondition(acme, observations.of('acme'));
    assert.deepEqual([c.status, c.reason], ['False', 'IfNotPresentSeen']);
    assert.match(c.message, /KubeletEnsureSecretPulledImages/);
  });
});
