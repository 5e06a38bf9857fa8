// The RegistryCredential API as a cluster administrator meets it through kubectl: the CRD is
// served, the samples apply, malformed objects are refused with a message naming the field, and
// `kubectl get regcred` prints the documented columns. No operator runs here: this is the schema.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ApiextensionsV1Api } from '@kubernetes/client-node';
import { parseAllDocuments, stringify } from 'yaml';
import { API_VERSION, KIND, type RegistryCredential, SOURCE_KINDS } from '../../src/api/types.ts';
import { uniqueName } from '../support/names.ts';
import { CRD_NAME, cluster } from './hooks.ts';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const repoRoot = join(import.meta.dirname, '..', '..');
/** Every object this file creates carries it, so `after` can find what a failure left behind. */
const TEST_LABEL = 'regcred.dev/test-suite';
const runId = uniqueName('crd');

function credential(name: string, spec: Json, labels: Record<string, string> = {}): JsonObject {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name, labels: { [TEST_LABEL]: runId, ...labels } },
    spec,
  };
}

/** What was sent and what came back, for assertion messages. */
function exchange(sent: Json | string, result: { code: number; stdout: string; stderr: string }) {
  const body = typeof sent === 'string' ? sent : stringify(sent);
  return [
    '--- sent:',
    body.length > 4000 ? `${body.slice(0, 4000)}\n… (${body.length} characters)` : body,
    `--- kubectl exited ${result.code}; stdout:`,
    result.stdout.trim(),
    '--- stderr:',
    result.stderr.trim(),
  ].join('\n');
}

/** Submits objects as a user would, with strict field validation (unknown fields are errors). */
async function kubectlApply(objects: Json | string, extraArgs: string[] = []) {
  const input = typeof objects === 'string' ? objects : JSON.stringify(objects);
  return cluster.kubectl(['apply', '--validate=strict', ...extraArgs, '-f', '-'], { input });
}

/** A valid spec to start each malformed case from. */
function validSpec(): JsonObject {
  return {
    namespaces: ['team-a'],
    registries: [{ server: 'registry.example.com', basic: { secretRef: { name: 'src' } } }],
  };
}

function specWith(changes: { [key: string]: Json | undefined }): JsonObject {
  const spec = validSpec();
  for (const [key, value] of Object.entries(changes)) {
    if (value === undefined) delete spec[key];
    else spec[key] = value;
  }
  return spec;
}

function basicEntry(server: string): JsonObject {
  return { server, basic: { secretRef: { name: 'src' } } };
}

interface Malformed {
  story: string;
  spec: Json;
  /** metadata.name to use instead of a generated one. */
  name?: string;
  /** Each must appear in kubectl's error: the field first, then a word of the reason. */
  expect: string[];
}

const malformed: Malformed[] = [
  {
    story: 'no registries at all',
    spec: specWith({ registries: undefined }),
    expect: ['spec.registries', 'Required value'],
  },
  {
    story: 'an empty registries list',
    spec: specWith({ registries: [] }),
    expect: ['spec.registries', 'at least 1 items'],
  },
  {
    story: '33 registries, one more than the limit',
    spec: specWith({
      registries: Array.from({ length: 33 }, (_, i) => basicEntry(`r${i}.example.com`)),
    }),
    expect: ['spec.registries', 'at most 32 items'],
  },
  {
    story: 'two credential sources in one registry entry',
    spec: specWith({
      registries: [
        { server: 'registry.example.com', basic: { secretRef: { name: 'src' } }, gcp: {} },
      ],
    }),
    expect: ['spec.registries[0]', 'exactly one of basic, dockerConfig, ecr, gcp or acr'],
  },
  {
    story: 'a registry entry with no credential source',
    spec: specWith({ registries: [{ server: 'registry.example.com' }] }),
    expect: ['spec.registries[0]', 'exactly one of basic, dockerConfig, ecr, gcp or acr'],
  },
  {
    story: 'a basic source without a server',
    spec: specWith({ registries: [{ basic: { secretRef: { name: 'src' } } }] }),
    expect: ['spec.registries[0].server', 'Required value'],
  },
  {
    story: 'a server with a space in it',
    spec: specWith({ registries: [basicEntry('registry example.com')] }),
    expect: ['spec.registries[0].server', 'should match'],
  },
  {
    story: 'a server that is only a scheme (https://)',
    spec: specWith({ registries: [basicEntry('https://')] }),
    expect: ['spec.registries[0].server', 'should match'],
  },
  {
    story: 'a server with an empty host label (a..b)',
    spec: specWith({ registries: [basicEntry('a..b')] }),
    expect: ['spec.registries[0].server', 'should match'],
  },
  {
    story: 'a server with an ftp:// scheme',
    spec: specWith({ registries: [basicEntry('ftp://registry.example.com')] }),
    expect: ['spec.registries[0].server', 'should match'],
  },
  {
    story: 'a server beside a dockerConfig source, which brings its own',
    spec: specWith({
      registries: [{ server: 'docker.io', dockerConfig: { secretRef: { name: 'cfg' } } }],
    }),
    expect: ['spec.registries[0].server', 'Forbidden'],
  },
  {
    story: 'the same server in two registry entries',
    spec: specWith({ registries: [basicEntry('quay.io'), { server: 'quay.io', gcp: {} }] }),
    expect: ['spec.registries', 'only one registries entry'],
  },
  {
    story: 'a refreshInterval in words ("5 minutes")',
    spec: specWith({ refreshInterval: '5 minutes' }),
    expect: ['spec.refreshInterval', 'should match'],
  },
  {
    story: 'a refreshInterval under a minute (30s)',
    spec: specWith({ refreshInterval: '30s' }),
    expect: ['spec.refreshInterval', 'at least 1m'],
  },
  {
    story: 'neither a namespaceSelector nor namespaces',
    spec: specWith({ namespaces: undefined }),
    expect: ['spec', 'spec.namespaceSelector or spec.namespaces'],
  },
  {
    story: 'an empty namespaces list and no namespaceSelector',
    spec: specWith({ namespaces: [] }),
    expect: ['spec', 'spec.namespaceSelector or spec.namespaces'],
  },
  {
    story: 'a namespace name that is not a DNS label',
    spec: specWith({ namespaces: ['Team_A'] }),
    expect: ['spec.namespaces[0]', 'should match'],
  },
  {
    story: '1001 namespace names, one more than the limit',
    spec: specWith({ namespaces: Array.from({ length: 1001 }, (_, i) => `ns-${i}`) }),
    expect: ['spec.namespaces', 'at most 1000 items'],
  },
  {
    story: 'a secretName with upper case and an underscore',
    spec: specWith({ secretName: 'Acme_Pull' }),
    expect: ['spec.secretName', 'should match'],
  },
  {
    story: 'a secretName of 254 characters',
    spec: specWith({ secretName: 'a'.repeat(254) }),
    expect: ['spec.secretName', 'Too long'],
  },
  {
    story: 'a field the API does not have (strict validation)',
    spec: specWith({
      registries: [
        { server: 'registry.example.com', basic: { secretRef: { name: 'src' }, user: 'me' } },
      ],
    }),
    expect: ['unknown field "spec.registries[0].basic.user"'],
  },
  {
    story: 'a suspend that is not a boolean',
    spec: specWith({ suspend: 'yes' }),
    expect: ['spec.suspend', 'boolean'],
  },
  {
    story: 'a matchExpressions operator Kubernetes does not know',
    spec: specWith({
      namespaceSelector: { matchExpressions: [{ key: 'tenant', operator: 'Equals' }] },
    }),
    expect: ['spec.namespaceSelector.matchExpressions[0].operator', 'Unsupported value'],
  },
  {
    story: 'an In expression without values',
    spec: specWith({
      namespaceSelector: { matchExpressions: [{ key: 'tenant', operator: 'In' }] },
    }),
    expect: ['spec.namespaceSelector.matchExpressions[0].values', 'non-empty for In'],
  },
  {
    story: 'an Exists expression with values',
    spec: specWith({
      namespaceSelector: {
        matchExpressions: [{ key: 'tenant', operator: 'Exists', values: ['acme'] }],
      },
    }),
    expect: ['spec.namespaceSelector.matchExpressions[0].values', 'empty for Exists'],
  },
  {
    story: '"*" mixed with ServiceAccount names',
    spec: specWith({ serviceAccounts: ['*', 'default'] }),
    expect: ['spec.serviceAccounts', 'must be the only entry'],
  },
  {
    story: 'an acr tenantId that is not a UUID',
    spec: specWith({
      registries: [
        {
          server: 'myregistry.azurecr.io',
          acr: { tenantId: 'contoso', clientId: '00000000-0000-0000-0000-000000000000' },
        },
      ],
    }),
    expect: ['spec.registries[0].acr.tenantId', 'should match'],
  },
  {
    story: 'an acr clientSecretRef without tenantId and clientId',
    spec: specWith({
      registries: [{ server: 'myregistry.azurecr.io', acr: { clientSecretRef: { name: 'sp' } } }],
    }),
    expect: ['spec.registries[0].acr.clientSecretRef', 'tenantId and clientId are required'],
  },
  {
    story:
      'an acr registry whose server is not an Azure Container Registry (the token would go there)',
    spec: specWith({
      registries: [{ server: 'registry.attacker.example', acr: {} }],
    }),
    expect: ['spec.registries[0].server', 'Azure Container Registry'],
  },
  {
    story: 'an ecr region that is not an AWS region',
    spec: specWith({
      registries: [
        { server: '123456789012.dkr.ecr.eu-west-1.amazonaws.com', ecr: { region: 'Ireland' } },
      ],
    }),
    expect: ['spec.registries[0].ecr.region', 'should match'],
  },
  {
    story: 'an ecr source without region on a server that does not name one',
    spec: specWith({ registries: [{ server: 'registry.example.com', ecr: {} }] }),
    expect: ['spec.registries[0].ecr.region', 'Required value'],
  },
  {
    story: 'an ecr roleArn that is not an IAM role ARN',
    spec: specWith({
      registries: [
        {
          server: '123456789012.dkr.ecr.eu-west-1.amazonaws.com',
          ecr: { roleArn: 'arn:aws:iam::1234:user/pull' },
        },
      ],
    }),
    expect: ['spec.registries[0].ecr.roleArn', 'should match'],
  },
  {
    story: 'a secretRef without a name',
    spec: specWith({
      registries: [{ server: 'registry.example.com', basic: { secretRef: { namespace: 'x' } } }],
    }),
    expect: ['spec.registries[0].basic.secretRef.name', 'Required value'],
  },
  {
    story: 'a secretRef namespace that is not a DNS label',
    spec: specWith({
      registries: [
        {
          server: 'docker.io',
          gcp: { serviceAccountKeySecretRef: { name: 'k', namespace: 'a.b' } },
        },
      ],
    }),
    expect: ['spec.registries[0].gcp.serviceAccountKeySecretRef.namespace', 'should match'],
  },
  {
    story: 'a name longer than the 63 characters a label value can hold',
    name: `${runId}-${'x'.repeat(63)}`,
    spec: validSpec(),
    expect: ['metadata.name', 'Too long'],
  },
];

describe('The RegistryCredential API, as kubectl users meet it', () => {
  after(async function () {
    this.timeout(60_000);
    await cluster.kubectl(['delete', 'regcred', '-l', `${TEST_LABEL}=${runId}`, '--wait=false']);
    await cluster.kubectl(['delete', 'namespace', '-l', `${TEST_LABEL}=${runId}`, '--wait=false']);
  });

  it('is served: the CRD is Established with its names accepted', async () => {
    const api = cluster.kc.makeApiClient(ApiextensionsV1Api);
    const crd = await api.readCustomResourceDefinition({ name: CRD_NAME });
    const conditions = Object.fromEntries(
      (crd.status?.conditions ?? []).map((c) => [c.type, c.status]),
    );
    assert.equal(conditions.Established, 'True', `CRD conditions: ${JSON.stringify(conditions)}`);
    assert.equal(conditions.NamesAccepted, 'True', `CRD conditions: ${JSON.stringify(conditions)}`);
    assert.deepEqual(crd.status?.acceptedNames?.shortNames, ['regcred']);
  });

  describe('config/samples', () => {
    // The samples use fixed names (regcred-system, team-a, tenant=acme, sample-basic, …), and
    // the suite's operator is running. To apply them for real without touching anyone else's
    // objects, this run renames every namespace, label value and RegistryCredential with its own
    // suffix, and points every secretRef at the renamed regcred-system: a namespace the operator
    // may not read from, so it reports SourceForbidden and never calls a cloud with fake keys.
    function isolatedSamples(built: string): JsonObject[] {
      const documents = parseAllDocuments(built).map((d) => d.toJSON() as JsonObject);
      const suffixed = (value: Json): string => `${String(value)}-${runId}`;
      const asObject = (value: Json | undefined): JsonObject | undefined =>
        typeof value === 'object' && value !== null && !Array.isArray(value) ? value : undefined;
      for (const doc of documents) {
        const meta = asObject(doc.metadata) ?? assert.fail(`no metadata: ${stringify(doc)}`);
        const labels = asObject(meta.labels) ?? {};
        for (const key of Object.keys(labels)) labels[key] = suffixed(labels[key] ?? '');
        meta.labels = { ...labels, [TEST_LABEL]: runId };
        if (doc.kind === 'Namespace' || doc.kind === KIND) meta.name = suffixed(meta.name ?? '');
        if (meta.namespace !== undefined) meta.namespace = suffixed(meta.namespace);
        if (doc.kind !== KIND) continue;
        const spec = asObject(doc.spec) ?? {};
        if (Array.isArray(spec.namespaces)) spec.namespaces = spec.namespaces.map(suffixed);
        const selector = asObject(spec.namespaceSelector);
        const matchLabels = asObject(selector?.matchLabels);
        for (const key of Object.keys(matchLabels ?? {})) {
          if (matchLabels) matchLabels[key] = suffixed(matchLabels[key] ?? '');
        }
        for (const expression of Array.isArray(selector?.matchExpressions)
          ? selector.matchExpressions
          : []) {
          const values = asObject(expression)?.values;
          if (Array.isArray(values)) values.splice(0, values.length, ...values.map(suffixed));
        }
        // Every secretRef-like object sits one level below a source, e.g. basic.secretRef.
        for (const entry of Array.isArray(spec.registries) ? spec.registries : []) {
          for (const source of Object.values(asObject(entry) ?? {})) {
            for (const ref of Object.values(asObject(source) ?? {})) {
              const secretRef = asObject(ref);
              if (secretRef?.name) secretRef.namespace = suffixed('regcred-system');
            }
          }
        }
      }
      return documents;
    }

    async function builtSamples(): Promise<string> {
      return cluster.kubectlOk(['kustomize', join(repoRoot, 'config', 'samples')]);
    }

    it('has one RegistryCredential per credential source, and what they read', async () => {
      const documents = parseAllDocuments(await builtSamples()).map(
        (d) => d.toJSON() as JsonObject,
      );
      const sources = documents
        .filter((d) => d.kind === KIND)
        .flatMap((d) => ((d.spec as JsonObject).registries as JsonObject[]).map(Object.keys))
        .flat()
        .filter((key) => key !== 'server');
      assert.deepEqual([...sources].sort(), [...SOURCE_KINDS].sort());
      const kinds = documents.map((d) => d.kind);
      assert.ok(kinds.includes('Namespace') && kinds.includes('Secret'), `kinds: ${kinds}`);
    });

    it('apply cleanly, and applying them again changes nothing', async () => {
      const documents = isolatedSamples(await builtSamples());
      const input = documents.map((d) => stringify(d)).join('---\n');
      const first = await kubectlApply(input);
      assert.equal(first.code, 0, exchange(input, first));
      const again = await kubectlApply(input);
      assert.equal(again.code, 0, exchange(input, again));
      const changed = again.stdout
        .trim()
        .split('\n')
        .filter((line) => !line.endsWith(' unchanged'));
      assert.deepEqual(changed, [], exchange(input, again));

      const names = documents
        .filter((d) => d.kind === KIND)
        .map((d) => (d.metadata as JsonObject).name);
      const got = await cluster.kubectl(['get', 'regcred', ...names.map(String), '-o', 'name']);
      assert.equal(got.code, 0, exchange(names.join(' '), got));
      assert.equal(got.stdout.trim().split('\n').length, SOURCE_KINDS.length, got.stdout);

      const deleted = await cluster.kubectl(['delete', '--wait=false', '-f', '-'], { input });
      assert.equal(deleted.code, 0, exchange(input, deleted));
    });
  });

  describe('a well-formed RegistryCredential', () => {
    it('is accepted as API.md writes it, with every source and field', async () => {
      const sent = credential(uniqueName('apimd'), {
        secretName: 'acme-pull',
        namespaceSelector: { matchLabels: { tenant: 'acme' } },
        namespaces: ['shared-tools'],
        serviceAccounts: ['default'],
        suspend: false,
        refreshInterval: '1h',
        registries: [
          {
            server: 'registry.example.com:5000',
            basic: {
              secretRef: { name: 'acme-basic', namespace: 'regcred-system' },
              usernameKey: 'username',
              passwordKey: 'password',
            },
          },
          { dockerConfig: { secretRef: { name: 'acme-dockercfg' } } },
          {
            server: '123456789012.dkr.ecr.eu-west-1.amazonaws.com',
            ecr: {
              region: 'eu-west-1',
              roleArn: 'arn:aws:iam::123456789012:role/pull',
              credentialsSecretRef: { name: 'aws-keys' },
            },
          },
          {
            server: 'europe-west1-docker.pkg.dev',
            gcp: { serviceAccountKeySecretRef: { name: 'gcp-key', key: 'key.json' } },
          },
          {
            server: 'myregistry.azurecr.io',
            acr: {
              tenantId: '00000000-0000-0000-0000-000000000000',
              clientId: '00000000-0000-0000-0000-000000000000',
              clientSecretRef: { name: 'azure-sp', key: 'clientSecret' },
            },
          },
        ],
      });
      const result = await kubectlApply(sent, ['--dry-run=server']);
      assert.equal(result.code, 0, exchange(sent, result));
    });

    it('accepts every server form API.md names, and sources with no credentials given', async () => {
      const servers = [
        'registry.example.com:5000',
        '*.example.com',
        'docker.io',
        'https://index.docker.io/v1/',
        'localhost:5000',
        'http://10.0.0.7:5000/team/images',
      ];
      const sent = credential(uniqueName('servers'), {
        namespaceSelector: {},
        serviceAccounts: ['*'],
        refreshInterval: '1h30m',
        registries: [
          ...servers.map(basicEntry),
          { server: '123456789012.dkr.ecr.eu-west-1.amazonaws.com', ecr: {} },
          { server: '123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn', ecr: {} },
          { server: '123456789012.dkr-ecr.eu-west-1.on.aws', ecr: {} },
          { server: 'europe-west1-docker.pkg.dev', gcp: {} },
          { server: 'myregistry.azurecr.io', acr: {} },
          { server: 'https://Contoso.azurecr.cn:443', acr: {} },
          { server: 'gov.azurecr.us', acr: {} },
        ],
      });
      const result = await kubectlApply(sent, ['--dry-run=server']);
      assert.equal(result.code, 0, exchange(sent, result));
    });

    it('gets the documented defaults for what it leaves out', async () => {
      const sent = credential(
        uniqueName('defaults'),
        specWith({
          registries: [
            basicEntry('registry.example.com'),
            {
              server: 'europe-west1-docker.pkg.dev',
              gcp: { serviceAccountKeySecretRef: { name: 'k' } },
            },
            {
              server: 'myregistry.azurecr.io',
              acr: {
                tenantId: '00000000-0000-0000-0000-000000000000',
                clientId: '00000000-0000-0000-0000-000000000000',
                clientSecretRef: { name: 'sp' },
              },
            },
          ],
        }),
      );
      const result = await cluster.kubectl(
        ['create', '--dry-run=server', '--validate=strict', '-o', 'json', '-f', '-'],
        { input: JSON.stringify(sent) },
      );
      assert.equal(result.code, 0, exchange(sent, result));
      const stored = JSON.parse(result.stdout) as RegistryCredential;
      const [basic, gcp, acr] = stored.spec.registries;
      const defaults = {
        serviceAccounts: stored.spec.serviceAccounts,
        suspend: stored.spec.suspend,
        basic: basic?.basic,
        gcpKey: gcp?.gcp?.serviceAccountKeySecretRef?.key,
        acrKey: acr?.acr?.clientSecretRef?.key,
      };
      assert.deepEqual(
        defaults,
        {
          serviceAccounts: ['default'],
          suspend: false,
          basic: { secretRef: { name: 'src' }, usernameKey: 'username', passwordKey: 'password' },
          gcpKey: 'key.json',
          acrKey: 'clientSecret',
        },
        exchange(sent, result),
      );
    });
  });

  describe('a malformed RegistryCredential is refused, naming the field at fault', () => {
    for (const { story, spec, name, expect } of malformed) {
      it(`refuses ${story} (${expect[0]})`, async () => {
        const sent = credential(name ?? uniqueName('bad'), spec);
        const result = await kubectlApply(sent);
        assert.notEqual(result.code, 0, `the API server accepted it\n${exchange(sent, result)}`);
        for (const fragment of expect) {
          assert.ok(
            result.stderr.includes(fragment),
            `the error does not say ${JSON.stringify(fragment)}\n${exchange(sent, result)}`,
          );
        }
      });
    }
  });

  describe('kubectl get regcred', () => {
    // The columns are checked against a status this test writes, so the suite's operator must
    // not write its own meanwhile: it is stopped, and started again once the object is gone.
    const name = uniqueName('columns');
    before(async function () {
      this.timeout(120_000);
      await cluster.stopOperator();
    });
    after(async function () {
      this.timeout(120_000);
      await cluster.kubectl(['delete', 'regcred', name, '--ignore-not-found', '--wait=true']);
      await cluster.startOperator();
    });

    it('prints NAME READY SYNCED TARGETS NEXT REFRESH AGE, FAILED REASON MESSAGE with -o wide, and Ready for kubectl wait', async () => {
      const sent = credential(name, validSpec());
      const created = await kubectlApply(sent);
      assert.equal(created.code, 0, exchange(sent, created));
      // No operator runs here: write the status an operator would.
      const nextRefreshAt = new Date(Date.now() + 2 * 3600_000)
        .toISOString()
        .replace(/\.\d+Z$/, 'Z');
      const status = {
        status: {
          observedGeneration: 1,
          targetNamespaces: 3,
          syncedNamespaces: 2,
          failedNamespaceCount: 1,
          nextRefreshAt,
          conditions: [
            {
              type: 'Ready',
              status: 'False',
              reason: 'PartiallySynced',
              message: '2 of 3 target namespaces are synced',
              observedGeneration: 1,
              lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
            },
          ],
        },
      };
      const patched = await cluster.kubectl([
        'patch',
        'regcred',
        name,
        '--subresource=status',
        '--type=merge',
        '-p',
        JSON.stringify(status),
      ]);
      assert.equal(patched.code, 0, exchange(status, patched));

      const table = (stdout: string) =>
        stdout
          .trim()
          .split('\n')
          .map((line) => line.trim().split(/\s{2,}/));
      const got = await cluster.kubectl(['get', 'regcred', name]);
      assert.equal(got.code, 0, exchange(`kubectl get regcred ${name}`, got));
      const [header, row] = table(got.stdout);
      assert.deepEqual(
        header,
        ['NAME', 'READY', 'SYNCED', 'TARGETS', 'NEXT REFRESH', 'AGE'],
        got.stdout,
      );
      assert.deepEqual(row?.slice(0, 5), [name, 'False', '2', '3', nextRefreshAt], got.stdout);

      const wide = await cluster.kubectl(['get', 'registrycredentials', name, '-o', 'wide']);
      const [wideHeader, wideRow] = table(wide.stdout);
      assert.deepEqual(wideHeader?.slice(-3), ['FAILED', 'REASON', 'MESSAGE'], wide.stdout);
      assert.deepEqual(
        wideRow?.slice(-3),
        ['1', 'PartiallySynced', '2 of 3 target namespaces are synced'],
        wide.stdout,
      );

      const waited = await cluster.kubectl([
        'wait',
        '--for=condition=Ready=False',
        '--timeout=10s',
        `regcred/${name}`,
      ]);
      assert.equal(waited.code, 0, exchange(`kubectl wait regcred/${name}`, waited));

      // Category regcred, not all: `kubectl get all` does not list RegistryCredentials.
      const all = await cluster.kubectl(['get', 'all', '--all-namespaces', '-o', 'name']);
      assert.equal(all.code, 0, exchange('kubectl get all -A -o name', all));
      assert.ok(!all.stdout.includes('registrycredential'), all.stdout);
    });
  });
});
