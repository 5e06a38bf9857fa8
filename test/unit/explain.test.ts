// `kubectl regcred explain`'s answer as a user reads it, from cluster states built by hand: the
// candidates and their order, and each reason for no match, most specific first.
import assert from 'node:assert/strict';
import type { RegistryCredential } from '../../src/api/types.ts';
import { parseCommand } from '../../src/explain/args.ts';
import {
  type ExplainInput,
  type ExplainSecret,
  explain,
  type Read,
} from '../../src/explain/explain.ts';
import { renderExplanation } from '../../src/explain/render.ts';

const NOW = new Date('2026-12-06T12:00:00Z');
const SERVER = 'registry.example.com:5000';

function ok<T>(value: T): Read<T> {
  return { ok: true, value };
}
const notFound: Read<never> = { ok: false, status: 'NotFound', message: 'not found' };
const forbidden: Read<never> = { ok: false, status: 'Forbidden', message: 'forbidden (403)' };

function pullSecret(
  name: string,
  auths: Record<string, unknown>,
  credential?: string,
): ExplainSecret {
  return {
    name,
    type: 'kubernetes.io/dockerconfigjson',
    data: { '.dockerconfigjson': Buffer.from(JSON.stringify({ auths })).toString('base64') },
    ...(credential ? { labels: { 'regcred.dev/credential': credential } } : {}),
  };
}

function rc(
  name: string,
  extra: Partial<RegistryCredential['spec']> = {},
  status?: RegistryCredential['status'],
): RegistryCredential {
  return {
    apiVersion: 'regcred.dev/v1alpha1',
    kind: 'RegistryCredential',
    metadata: { name },
    spec: {
      namespaceSelector: { matchLabels: { tenant: 'acme' } },
      registries: [{ server: SERVER, basic: { secretRef: { name: 'src' } } }],
      ...extra,
    },
    ...(status ? { status } : {}),
  };
}

function input(overrides: Partial<ExplainInput> = {}): ExplainInput {
  const acme = pullSecret(
    'acme',
    { [SERVER]: { username: 'robot', password: 'pw-never-shown' } },
    'acme',
  );
  return {
    image: `${SERVER}/team/app:1.0`,
    namespace: 'tenant-a',
    subject: { kind: 'ServiceAccount', name: 'default' },
    serviceAccount: ok({ name: 'default', pullSecrets: ['acme'] }),
    secrets: new Map([['acme', ok(acme)]]),
    namespaceInfo: ok({
      name: 'tenant-a',
      labels: { tenant: 'acme' },
      annotations: {},
      terminating: false,
    }),
    credentials: ok([rc('acme')]),
    now: NOW,
    ...overrides,
  };
}

describe('explain', () => {
  it('lists candidates in the kubelet’s order with their RegistryCredential and token expiry', () => {
    const team = pullSecret('team', {
      [`${SERVER}/team`]: { auth: Buffer.from('team-bot:x').toString('base64') },
    });
    const e = explain(
      input({
        serviceAccount: ok({ name: 'default', pullSecrets: ['acme', 'team'] }),
        secrets: new Map([
          [
            'acme',
            ok(pullSecret('acme', { [SERVER]: { username: 'robot', password: 'pw' } }, 'acme')),
          ],
          ['team', ok(team)],
        ]),
        credentials: ok([
          rc(
            'acme',
            {},
            { registries: [{ server: SERVER, source: 'ecr', expiresAt: '2026-12-06T13:30:00Z' }] },
          ),
        ]),
      }),
    );
    assert.deepEqual(
      e.candidates.map((c) => [
        c.rank,
        c.secret,
        c.server,
        c.username,
        c.registryCredential,
        c.expiresAt,
        c.expired,
      ]),
      [
        [1, 'team', `${SERVER}/team`, 'team-bot', undefined, undefined, undefined],
        [2, 'acme', SERVER, 'robot', 'acme', '2026-12-06T13:30:00Z', false],
      ],
    );
    assert.deepEqual(e.reasons, []);
    const text = renderExplanation(e, NOW);
    assert.match(text, /2\. Secret acme, key "registry.example.com:5000", username "robot"/);
    assert.match(text, /token expires 2026-12-06T13:30:00Z \(in 1 h 30 min\)/);
    assert.ok(!text.includes('pw') && !JSON.stringify(e).includes('pw'), text);
  });

  it('warns when the first candidate’s token has expired', () => {
    const e = explain(
      input({
        credentials: ok([
          rc(
            'acme',
            {},
            { registries: [{ server: SERVER, source: 'ecr', expiresAt: '2026-12-06T11:00:00Z' }] },
          ),
        ]),
      }),
    );
    assert.equal(e.candidates[0]?.expired, true);
    assert.deepEqual(
      e.reasons.map((r) => r.code),
      ['TokenExpired'],
    );
  });

  it('most specific first: a Pod older than its ServiceAccount’s entry, then a missing Secret', () => {
    const e = explain(
      input({
        subject: {
          kind: 'Pod',
          name: 'web',
          pod: ok({ serviceAccountName: 'default', pullSecrets: ['old'] }),
        },
        serviceAccount: ok({ name: 'default', pullSecrets: ['old', 'acme'] }),
        secrets: new Map([
          ['old', notFound],
          ['acme', ok(pullSecret('acme', { [SERVER]: { username: 'robot' } }, 'acme'))],
        ]),
      }),
    );
    assert.deepEqual(e.candidates, []);
    assert.deepEqual(
      e.reasons.map((r) => r.code),
      ['PodPredatesServiceAccountEntry', 'SecretMissing'],
    );
    assert.match(e.reasons[0]?.message ?? '', /lists acme but Pod web does not.*Recreate the Pod/);
  });

  it('an ignored, terminating or system namespace, and the closest RegistryCredential', () => {
    const e = explain(
      input({
        namespace: 'kube-system',
        serviceAccount: ok({ name: 'default', pullSecrets: [] }),
        secrets: new Map(),
        namespaceInfo: ok({
          name: 'kube-system',
          labels: { team: 'core' },
          annotations: { 'regcred.dev/ignore': 'true' },
          terminating: true,
        }),
      }),
    );
    assert.deepEqual(
      e.reasons.map((r) => r.code),
      [
        'NamespaceIgnored',
        'NamespaceTerminating',
        'SystemNamespace',
        'NoRegistryCredentialTargetsNamespace',
      ],
    );
    assert.match(
      e.reasons[3]?.message ?? '',
      /closest: acme, selector \{"matchLabels":\{"tenant":"acme"\}\}, namespace labels \{"team":"core"\}/,
    );
  });

  it('a Conflict the credential reports for this namespace, and an expired token', () => {
    const e = explain(
      input({
        serviceAccount: ok({ name: 'default', pullSecrets: [] }),
        secrets: new Map(),
        credentials: ok([
          rc(
            'acme',
            {},
            {
              failedNamespaces: [
                {
                  name: 'tenant-a',
                  reason: 'Conflict',
                  message: 'Secret tenant-a/acme is not managed by regcred-operator',
                },
              ],
              registries: [{ server: SERVER, source: 'ecr', expiresAt: '2026-12-06T11:00:00Z' }],
            },
          ),
        ]),
      }),
    );
    assert.deepEqual(
      e.reasons.map((r) => r.code),
      ['CredentialFailedInNamespace', 'TokenExpired'],
    );
    assert.match(
      e.reasons[0]?.message ?? '',
      /acme reports Conflict in tenant-a: Secret tenant-a\/acme is not managed/,
    );
  });

  it('a credential that cannot resolve its source, and the closest of several by their labels', () => {
    const broken = rc(
      'acme',
      {},
      {
        conditions: [
          {
            type: 'Ready',
            status: 'False',
            reason: 'SourceInvalid',
            message: 'Secret regcred-system/acme-config is not valid JSON',
            lastTransitionTime: '2026-12-06T11:00:00Z',
          },
        ],
      },
    );
    const e = explain(
      input({
        serviceAccount: ok({ name: 'default', pullSecrets: [] }),
        secrets: new Map(),
        credentials: ok([broken]),
      }),
    );
    assert.deepEqual(
      e.reasons.map((r) => r.code),
      ['CredentialNotReady'],
    );
    assert.match(
      e.reasons[0]?.message ?? '',
      /acme is not Ready \(SourceInvalid\): Secret regcred-system\/acme-config is not valid JSON/,
    );

    const far = rc('far', { namespaceSelector: { matchLabels: { tenant: 'zeta' } } });
    const near = rc('near', {
      namespaceSelector: { matchLabels: { tenant: 'zeta', region: 'eu' } },
    });
    const closest = explain(
      input({
        serviceAccount: ok({ name: 'default', pullSecrets: [] }),
        secrets: new Map(),
        namespaceInfo: ok({
          name: 'tenant-a',
          labels: { region: 'eu' },
          annotations: {},
          terminating: false,
        }),
        credentials: ok([far, near]),
      }),
    );
    assert.match(closest.reasons[0]?.message ?? '', /closest: near, selector/);
  });

  it('shows port and path side by side when only the host matches', () => {
    const e = explain(
      input({
        image: 'registry.example.com/other/app',
        secrets: new Map([
          [
            'acme',
            ok(
              pullSecret(
                'acme',
                { 'registry.example.com:5000/team': { username: 'robot' } },
                'acme',
              ),
            ),
          ],
        ]),
      }),
    );
    const reason = e.reasons.find((r) => r.code === 'PortOrPathMismatch');
    assert.match(
      reason?.message ?? '',
      /port "5000" in the key, \(none\) in the image; path "\/team" in the key is not a prefix of the image's "\/other\/app"/,
    );
  });

  it('a Secret the kubelet cannot read fails every pull, and says so without quoting it', () => {
    const broken: ExplainSecret = {
      name: 'acme',
      type: 'kubernetes.io/dockerconfigjson',
      data: {
        '.dockerconfigjson': Buffer.from('{"auths":{"r":{"auth":"c2VjcmV0"}}}').toString('base64'),
      },
    };
    const e = explain(input({ secrets: new Map([['acme', ok(broken)]]) }));
    assert.deepEqual(
      e.reasons.map((r) => r.code),
      ['SecretUnreadable'],
    );
    assert.match(e.reasons[0]?.message ?? '', /fails every pull of the Pod/);
    assert.ok(!JSON.stringify(e).includes('c2VjcmV0'));
  });

  it('an invalid image, and what the caller could not read', () => {
    assert.deepEqual(
      explain(input({ image: 'Registry/App' })).reasons.map((r) => r.code),
      ['InvalidImage'],
    );
    const e = explain(input({ credentials: forbidden, namespaceInfo: forbidden }));
    assert.deepEqual(e.unreadable, [
      'Namespace tenant-a: forbidden (403)',
      'RegistryCredentials (cluster-scoped): forbidden (403)',
    ]);
    assert.equal(e.candidates[0]?.registryCredential, 'acme');
  });
});

describe('kubectl regcred arguments', () => {
  it('parses explain with its flags', () => {
    assert.deepEqual(
      parseCommand(['explain', 'nginx', '-n', 'team', '--pod', 'web', '-o', 'json']),
      {
        command: 'explain',
        args: { image: 'nginx', namespace: 'team', pod: 'web', output: 'json' },
      },
    );
  });

  for (const [argv, message] of [
    [['explain'], /explain needs an IMAGE/],
    [['explain', 'a', 'b'], /explain takes one IMAGE, got 2/],
    [['explain', 'a', '--pod', 'p', '--service-account', 's'], /exclusive/],
    [['explain', 'a', '-o', 'yaml'], /-o "yaml" is not supported/],
    [['explain', 'a', '--frob'], /Unknown option '--frob'/],
    [['explain', 'a', '-n', 'Bad_NS'], /--namespace "Bad_NS" is not a valid Kubernetes name/],
    [['describe', 'a'], /unknown command "describe"/],
  ] as const) {
    it(`refuses ${argv.join(' ')}`, () => {
      const parsed = parseCommand(argv);
      assert.equal(parsed.command, 'error');
      assert.match(parsed.command === 'error' ? parsed.message : '', message);
    });
  }
});
