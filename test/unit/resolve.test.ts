// Resolving a RegistryCredential's sources from the cache: which Secrets may be read, and which
// registries reach the Secret when the kubelet would take two keys for one registry.
import assert from 'node:assert/strict';
import type { V1Secret } from '@kubernetes/client-node';
import {
  type RegistryCredential,
  type RegistryCredentialSpec,
  SOURCE_LABEL,
} from '../../src/api/types.ts';
import { CredentialError } from '../../src/credentials/errors.ts';
import {
  resolveCredentials,
  resolveStaticCredentials,
  type SourcePolicy,
  type SourceSecrets,
} from '../../src/credentials/resolve.ts';
import { TokenCache } from '../../src/credentials/token-cache.ts';

const OPERATOR_NS = 'regcred-system';
const policy: SourcePolicy = {
  operatorNamespace: OPERATOR_NS,
  allowedSourceNamespaces: new Set([OPERATOR_NS]),
};
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const OPTED_IN = { [SOURCE_LABEL]: 'true' };

function cache(...secrets: V1Secret[]): SourceSecrets {
  const byKey = new Map(secrets.map((s) => [`${s.metadata?.namespace}/${s.metadata?.name}`, s]));
  return { sourceSecret: (namespace, name) => byKey.get(`${namespace}/${name}`) };
}

function basicSecret(
  name: string,
  data: Record<string, string>,
  labels: Record<string, string> = OPTED_IN,
): V1Secret {
  return {
    metadata: { name, namespace: OPERATOR_NS, labels },
    type: 'Opaque',
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
  };
}

function pullSecret(name: string, auths: Record<string, { auth: string }>): V1Secret {
  return {
    metadata: { name, namespace: OPERATOR_NS, labels: OPTED_IN },
    type: 'kubernetes.io/dockerconfigjson',
    data: { '.dockerconfigjson': b64(JSON.stringify({ auths })) },
  };
}

function credential(spec: Pick<RegistryCredentialSpec, 'registries'>): RegistryCredential {
  return {
    apiVersion: 'regcred.dev/v1alpha1',
    kind: 'RegistryCredential',
    metadata: { name: 'acme', uid: 'uid-1' },
    spec: { namespaces: ['team-a'], ...spec },
  };
}

function failure(fn: () => unknown): CredentialError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof CredentialError, `expected a CredentialError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a CredentialError');
}

describe('resolving sources', () => {
  describe('a Secret is a source only if it opted in', () => {
    const keys = basicSecret(
      'aws-keys',
      {
        AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE',
        AWS_SECRET_ACCESS_KEY: 'secret-access-key',
      },
      {},
    );

    it('refuses to copy another Secret key through basic: SourceForbidden naming the label', () => {
      const err = failure(() =>
        resolveStaticCredentials(
          credential({
            registries: [
              {
                server: 'registry.example.com',
                basic: {
                  secretRef: { name: 'aws-keys' },
                  usernameKey: 'AWS_ACCESS_KEY_ID',
                  passwordKey: 'AWS_SECRET_ACCESS_KEY',
                },
              },
            ],
          }),
          cache(keys),
          policy,
        ),
      );
      assert.equal(err.reason, 'SourceForbidden');
      assert.match(
        err.message,
        /regcred-system\/aws-keys is not labelled regcred\.dev\/source: "true"/,
      );
      assert.match(
        err.message,
        /kubectl label secret -n regcred-system aws-keys regcred\.dev\/source=true/,
      );
      assert.ok(!err.message.includes('secret-access-key'));
    });

    it('refuses an unlabelled dockerConfig and cloud identity Secret the same way', () => {
      const unlabelled: V1Secret = {
        ...pullSecret('dcj', {}),
        metadata: { name: 'dcj', namespace: OPERATOR_NS },
      };
      for (const registries of [
        [{ dockerConfig: { secretRef: { name: 'dcj' } } }],
        [
          {
            server: '123456789012.dkr.ecr.eu-west-1.amazonaws.com',
            ecr: { credentialsSecretRef: { name: 'aws-keys' } },
          },
        ],
      ]) {
        const err = failure(() =>
          resolveStaticCredentials(credential({ registries }), cache(unlabelled, keys), policy),
        );
        assert.equal(err.reason, 'SourceForbidden');
      }
    });

    it('a label with another value is not an opt-in', () => {
      const maybe = basicSecret(
        'maybe',
        { username: 'u', password: 'pw-maybe' },
        {
          [SOURCE_LABEL]: 'false',
        },
      );
      const err = failure(() =>
        resolveStaticCredentials(
          credential({
            registries: [
              { server: 'registry.example.com', basic: { secretRef: { name: 'maybe' } } },
            ],
          }),
          cache(maybe),
          policy,
        ),
      );
      assert.equal(err.reason, 'SourceForbidden');
    });

    it('a labelled cloud identity Secret limited to its kind cannot be copied through basic', () => {
      const limited: V1Secret = {
        ...basicSecret('aws-keys', {
          AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE',
          AWS_SECRET_ACCESS_KEY: 'secret-access-key',
        }),
      };
      limited.metadata = {
        ...limited.metadata,
        annotations: { 'regcred.dev/source-kinds': 'ecr' },
      };
      const err = failure(() =>
        resolveStaticCredentials(
          credential({
            registries: [
              {
                server: 'registry.example.com',
                basic: {
                  secretRef: { name: 'aws-keys' },
                  usernameKey: 'AWS_ACCESS_KEY_ID',
                  passwordKey: 'AWS_SECRET_ACCESS_KEY',
                },
              },
            ],
          }),
          cache(limited),
          policy,
        ),
      );
      assert.equal(err.reason, 'SourceForbidden');
      assert.match(
        err.message,
        /may be read only by ecr sources \(regcred\.dev\/source-kinds\), not basic/,
      );
      assert.ok(!err.message.includes('secret-access-key'));
      // Without the annotation, any kind may read it (the label alone).
      const open = basicSecret('aws-keys', { username: 'u', password: 'p' });
      const resolved = resolveStaticCredentials(
        credential({
          registries: [
            { server: 'registry.example.com', basic: { secretRef: { name: 'aws-keys' } } },
          ],
        }),
        cache(open),
        policy,
      );
      assert.equal(resolved.entries.size, 1);
    });

    it('reads a labelled Secret', () => {
      const resolved = resolveStaticCredentials(
        credential({
          registries: [{ server: 'registry.example.com', basic: { secretRef: { name: 'ok' } } }],
        }),
        cache(basicSecret('ok', { username: 'robot', password: 'pw-ok' })),
        policy,
      );
      assert.equal(resolved.entries.get('registry.example.com')?.password, 'pw-ok');
    });
  });

  describe('registries distinct as the kubelet sees them', () => {
    const source = basicSecret('acme-basic', { username: 'robot', password: 'explicit-pw' });

    it('two explicit servers the kubelet folds into one key: InvalidSpec naming both', () => {
      const err = failure(() =>
        resolveStaticCredentials(
          credential({
            registries: [
              { server: 'registry.example.com:5000', basic: { secretRef: { name: 'acme-basic' } } },
              {
                server: 'https://registry.example.com:5000/v2/',
                basic: { secretRef: { name: 'acme-basic' } },
              },
            ],
          }),
          cache(source),
          policy,
        ),
      );
      assert.equal(err.reason, 'InvalidSpec');
      assert.match(err.message, /spec\.registries\[0\]\.server registry\.example\.com:5000/);
      assert.match(
        err.message,
        /spec\.registries\[1\]\.server https:\/\/registry\.example\.com:5000\/v2\//,
      );
    });

    it('an imported key that collides with an explicit server is left out and marked shadowed', () => {
      const imported = pullSecret('acme-dcj', {
        'registry.example.com:5000': { auth: b64('import:imported-pw') },
        'other.example.com': { auth: b64('other:other-pw') },
      });
      // The import first: order in spec does not matter, the explicit server wins.
      const resolved = resolveStaticCredentials(
        credential({
          registries: [
            { dockerConfig: { secretRef: { name: 'acme-dcj' } } },
            {
              server: 'https://registry.example.com:5000/v2/',
              basic: { secretRef: { name: 'acme-basic' } },
            },
          ],
        }),
        cache(source, imported),
        policy,
      );
      assert.deepEqual([...resolved.entries.keys()].sort(), [
        'https://registry.example.com:5000/v2/',
        'other.example.com',
      ]);
      assert.equal(
        resolved.entries.get('https://registry.example.com:5000/v2/')?.password,
        'explicit-pw',
      );
      assert.deepEqual(resolved.registries, [
        { server: 'other.example.com', source: 'dockerConfig' },
        { server: 'registry.example.com:5000', source: 'dockerConfig', shadowed: true },
        { server: 'https://registry.example.com:5000/v2/', source: 'basic' },
      ]);
    });

    it('an imported key colliding with a cloud registry loses too, whether or not it has a token', () => {
      const imported = pullSecret('acme-dcj', {
        'https://myregistry.azurecr.io': { auth: b64('x:imported-acr') },
      });
      const resolved = resolveStaticCredentials(
        credential({
          registries: [
            { server: 'myregistry.azurecr.io', acr: {} },
            { dockerConfig: { secretRef: { name: 'acme-dcj' } } },
          ],
        }),
        cache(imported),
        policy,
      );
      assert.equal(resolved.entries.size, 0);
      assert.deepEqual(resolved.registries, [
        { server: 'https://myregistry.azurecr.io', source: 'dockerConfig', shadowed: true },
      ]);
    });

    it('after a restart, a cloud token is adopted from its own status entry, not a shadowed import of its key', async () => {
      const ecrServer = '123456789012.dkr.ecr.eu-west-1.amazonaws.com';
      const imported = pullSecret('acme-dcj', { [ecrServer]: { auth: b64('AWS:imported-token') } });
      const cred = credential({
        registries: [
          { server: ecrServer, ecr: { region: 'eu-west-1' } },
          { dockerConfig: { secretRef: { name: 'acme-dcj' } } },
        ],
      });
      cred.status = {
        registries: [
          { server: ecrServer, source: 'dockerConfig', shadowed: true },
          {
            server: ecrServer,
            source: 'ecr',
            refreshedAt: '2026-06-01T00:00:00Z',
            expiresAt: '2026-06-01T12:00:00Z',
          },
        ],
      };
      let cloudCalls = 0;
      const resolved = await resolveCredentials(cred, cache(imported), policy, {
        tokens: new TokenCache(),
        now: new Date('2026-06-01T01:00:00Z'),
        // Nothing listens there: a cloud call would fail, and is counted.
        endpoints: { ecrEndpoint: 'http://127.0.0.1:9', stsEndpoint: 'http://127.0.0.1:9' },
        onRefresh: () => {
          cloudCalls += 1;
        },
        written: () => new Map([[ecrServer, { username: 'AWS', password: 'saved-token' }]]),
      });
      assert.equal(cloudCalls, 0);
      assert.equal(resolved.entries.get(ecrServer)?.password, 'saved-token');
    });

    it('the index in an error names the registry in spec, cloud registries counted', () => {
      const err = failure(() =>
        resolveStaticCredentials(
          credential({
            registries: [
              { server: 'myregistry.azurecr.io', acr: {} },
              { server: 'registry.example.com', basic: { secretRef: { name: 'missing' } } },
            ],
          }),
          cache(),
          policy,
        ),
      );
      assert.equal(err.reason, 'SourceNotFound');
      assert.match(err.message, /^spec\.registries\[1\]\.basic\.secretRef/);
    });
  });
});
