// The RegistryCredential TS types (src/api/types.ts) and the CRD schema must agree field for
// field. Types vanish at run time, so the type checker does half the work: `everything` below
// must name every field of every interface (Complete<T> makes each optional field required, and
// an object literal may not carry unknown ones), and the test compares its property paths with
// the paths the CRD's openAPIV3Schema declares. Required fields are compared the same way.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { V1LabelSelector, V1ObjectMeta } from '@kubernetes/client-node';
import { parse } from 'yaml';
import {
  type AcrSource,
  API_VERSION,
  type BasicSource,
  type Condition,
  type ConditionStatus,
  type DockerConfigSource,
  type EcrSource,
  type FailedNamespace,
  type GcpSource,
  GROUP,
  KIND,
  MAX_FAILED_NAMESPACES,
  MAX_MISSING_NAMESPACES,
  MAX_NAMESPACE_NAMES,
  MAX_REGISTRIES,
  MAX_STATUS_REGISTRIES,
  MAX_STATUS_SERVER_LENGTH,
  PLURAL,
  type Registry,
  type RegistryCredential,
  type RegistryCredentialSpec,
  type RegistryCredentialStatus,
  type RegistryStatus,
  type SecretKeyReference,
  type SecretReference,
  SOURCE_KINDS,
  VERSION,
} from '../../src/api/types.ts';

const repoRoot = join(import.meta.dirname, '..', '..');
const CRD_FILE = 'regcred.dev_registrycredentials.yaml';
const canonicalCrdPath = join(repoRoot, 'config', 'crd', 'bases', CRD_FILE);
const publishedCrdPath = join(repoRoot, 'crds', CRD_FILE);

/** The part of an OpenAPI v3 schema node this test reads. */
interface SchemaNode {
  type?: string;
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  required?: string[];
  enum?: unknown[];
  maxItems?: number;
  maxLength?: number;
  'x-kubernetes-validations'?: { rule: string; message?: string; messageExpression?: string }[];
}

interface PrinterColumn {
  name: string;
  type: string;
  jsonPath: string;
  priority?: number;
}

interface CrdDocument {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: {
    group: string;
    scope: string;
    names: {
      kind: string;
      listKind: string;
      plural: string;
      singular: string;
      shortNames: string[];
      categories: string[];
    };
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      subresources?: { status?: object };
      additionalPrinterColumns: PrinterColumn[];
      schema: { openAPIV3Schema: SchemaNode };
    }[];
  };
}

/** Subtrees compared as a whole: they are Kubernetes' own types, not ours. */
const OPAQUE_PATHS = new Set(['spec.namespaceSelector']);

// ---- type-level helpers --------------------------------------------------------------------

type Same<A, B> =
  (<G>() => G extends A ? 1 : 2) extends <G>() => G extends B ? 1 : 2 ? true : false;
type IsOpaque<T> =
  Same<T, V1LabelSelector> extends true ? true : Same<T, V1ObjectMeta> extends true ? true : false;

/** T with every optional field made required, all the way down (Kubernetes' own types excepted). */
type Complete<T> =
  IsOpaque<T> extends true
    ? T
    : T extends readonly (infer U)[]
      ? Complete<U>[]
      : T extends object
        ? { -readonly [K in keyof T]-?: Complete<Exclude<T[K], undefined>> }
        : T;

type RequiredKeys<T> = {
  [K in keyof T]-?: Record<never, never> extends Pick<T, K> ? never : K;
}[keyof T];

/**
 * `exactly<U>()([...])` type-checks only when the list holds every member of U and nothing else,
 * so a runtime list can stand for a TS union (of keys, or of string literals).
 */
function exactly<U extends string>() {
  return <const L extends readonly U[]>(
    list: L & ([U] extends [L[number]] ? unknown : never),
  ): readonly string[] => list;
}

function requiredKeysOf<T>() {
  return exactly<Extract<RequiredKeys<T>, string>>();
}

// ---- one RegistryCredential using every field ------------------------------------------------

const everything: Complete<RegistryCredential> = {
  apiVersion: API_VERSION,
  kind: KIND,
  metadata: { name: 'acme' },
  spec: {
    secretName: 'acme-pull',
    namespaceSelector: {
      matchLabels: { tenant: 'acme' },
      matchExpressions: [{ key: 'tier', operator: 'In', values: ['gold'] }],
    },
    namespaces: ['shared-tools'],
    serviceAccounts: ['default'],
    suspend: false,
    imagePullPolicy: 'Always',
    refreshInterval: '1h',
    // Complete<Registry> asks for all five sources at once; the CRD allows one per entry, which
    // does not matter here: only the property paths are compared.
    registries: [
      {
        server: '123456789012.dkr.ecr.eu-west-1.amazonaws.com',
        basic: {
          secretRef: { name: 'acme-basic', namespace: 'regcred-system' },
          usernameKey: 'username',
          passwordKey: 'password',
        },
        dockerConfig: { secretRef: { name: 'acme-dockercfg', namespace: 'regcred-system' } },
        ecr: {
          region: 'eu-west-1',
          roleArn: 'arn:aws:iam::123456789012:role/pull',
          credentialsSecretRef: { name: 'aws-keys', namespace: 'regcred-system' },
        },
        gcp: {
          serviceAccountKeySecretRef: { name: 'gcp-key', namespace: 'regcred-system', key: 'k' },
        },
        acr: {
          tenantId: '00000000-0000-0000-0000-000000000000',
          clientId: '00000000-0000-0000-0000-000000000000',
          clientSecretRef: { name: 'azure-sp', namespace: 'regcred-system', key: 'clientSecret' },
        },
      },
    ],
  },
  status: {
    observedGeneration: 3,
    conditions: [
      {
        type: 'Ready',
        status: 'True',
        reason: 'Ready',
        message: 'all 12 target namespaces are synced',
        observedGeneration: 3,
        lastTransitionTime: '2025-01-01T00:00:00Z',
      },
    ],
    targetNamespaces: 12,
    syncedNamespaces: 11,
    failedNamespaces: [{ name: 'ns-x', reason: 'Conflict', message: 'not managed' }],
    failedNamespaceCount: 1,
    missingNamespaces: ['shared-tools'],
    registries: [
      {
        server: '123456789012.dkr.ecr.eu-west-1.amazonaws.com',
        source: 'ecr',
        refreshedAt: '2025-01-01T00:00:00Z',
        expiresAt: '2025-01-01T12:00:00Z',
        shadowed: false,
      },
    ],
    nextRefreshAt: '2025-01-01T08:00:00Z',
    lastRefreshRequest: '2025-01-01T07:00:00Z',
  },
};

/** Schema paths of object nodes, and the interface whose required fields must match there. */
const requiredFields: Record<string, readonly string[]> = {
  spec: requiredKeysOf<RegistryCredentialSpec>()(['registries']),
  'spec.registries[]': requiredKeysOf<Registry>()([]),
  'spec.registries[].basic': requiredKeysOf<BasicSource>()(['secretRef']),
  'spec.registries[].basic.secretRef': requiredKeysOf<SecretReference>()(['name']),
  'spec.registries[].dockerConfig': requiredKeysOf<DockerConfigSource>()(['secretRef']),
  'spec.registries[].dockerConfig.secretRef': requiredKeysOf<SecretReference>()(['name']),
  'spec.registries[].ecr': requiredKeysOf<EcrSource>()([]),
  'spec.registries[].ecr.credentialsSecretRef': requiredKeysOf<SecretReference>()(['name']),
  'spec.registries[].gcp': requiredKeysOf<GcpSource>()([]),
  'spec.registries[].gcp.serviceAccountKeySecretRef': requiredKeysOf<SecretKeyReference>()([
    'name',
  ]),
  'spec.registries[].acr': requiredKeysOf<AcrSource>()([]),
  'spec.registries[].acr.clientSecretRef': requiredKeysOf<SecretKeyReference>()(['name']),
  status: requiredKeysOf<RegistryCredentialStatus>()([]),
  'status.conditions[]': requiredKeysOf<Condition>()([
    'type',
    'status',
    'reason',
    'message',
    'lastTransitionTime',
  ]),
  'status.failedNamespaces[]': requiredKeysOf<FailedNamespace>()(['name', 'reason', 'message']),
  'status.registries[]': requiredKeysOf<RegistryStatus>()(['server', 'source']),
};

// ---- walking schemas and objects -------------------------------------------------------------

/** Property paths a schema declares below `prefix`; array items add `[]` to the path. */
function schemaPaths(node: SchemaNode, prefix: string, into = new Set<string>()): Set<string> {
  for (const [name, child] of Object.entries(node.properties ?? {})) {
    const path = `${prefix}.${name}`;
    into.add(path);
    if (OPAQUE_PATHS.has(path)) continue;
    if (child.type === 'array' && child.items) schemaPaths(child.items, `${path}[]`, into);
    else schemaPaths(child, path, into);
  }
  return into;
}

/** Object schema nodes below (and including) `prefix`, by path. */
function objectNodes(node: SchemaNode, prefix: string, into = new Map<string, SchemaNode>()) {
  if (node.type === 'object' && node.properties) into.set(prefix, node);
  for (const [name, child] of Object.entries(node.properties ?? {})) {
    const path = `${prefix}.${name}`;
    if (OPAQUE_PATHS.has(path)) continue;
    if (child.type === 'array' && child.items) objectNodes(child.items, `${path}[]`, into);
    else objectNodes(child, path, into);
  }
  return into;
}

/** Property paths present in a plain value below `prefix`, in the same notation. */
function valuePaths(value: unknown, prefix: string, into = new Set<string>()): Set<string> {
  if (Array.isArray(value)) {
    for (const item of value) valuePaths(item, `${prefix}[]`, into);
  } else if (typeof value === 'object' && value !== null) {
    for (const [name, child] of Object.entries(value)) {
      const path = `${prefix}.${name}`;
      into.add(path);
      if (!OPAQUE_PATHS.has(path)) valuePaths(child, path, into);
    }
  }
  return into;
}

/** Every schema node, with its path, to check things that hold everywhere. */
function* allNodes(node: SchemaNode, path: string): Generator<[string, SchemaNode]> {
  yield [path, node];
  for (const [name, child] of Object.entries(node.properties ?? {})) {
    yield* allNodes(child, `${path}.${name}`);
  }
  if (node.items) yield* allNodes(node.items, `${path}[]`);
}

function sorted(paths: Iterable<string>): string[] {
  return [...paths].sort();
}

function at(node: SchemaNode, path: string): SchemaNode {
  let current = node;
  for (const part of path.split('.')) {
    const name = part.replace(/\[\]$/, '');
    const child = current.properties?.[name];
    assert.ok(child, `the CRD schema has no ${path} (missing ${name})`);
    current = part.endsWith('[]') ? (child.items ?? assert.fail(`${path}: no items`)) : child;
  }
  return current;
}

// ---- the tests -------------------------------------------------------------------------------

describe('the RegistryCredential CRD and src/api/types.ts', () => {
  const crdText = readFileSync(canonicalCrdPath, 'utf8');
  // The shape is asserted piece by piece below; a wrong guess fails an assertion, not silently.
  const crd = parse(crdText) as CrdDocument;
  const version = crd.spec.versions[0] ?? assert.fail('the CRD has no versions');
  const root = version.schema.openAPIV3Schema;
  const spec = at(root, 'spec');
  const status = at(root, 'status');

  it('is published unchanged in crds/, which the root hooks and chart tooling install', () => {
    assert.equal(readFileSync(publishedCrdPath, 'utf8'), crdText);
  });

  it('is what config/crd/kustomization.yaml deploys', () => {
    const kustomization = parse(
      readFileSync(join(repoRoot, 'config', 'crd', 'kustomization.yaml'), 'utf8'),
    ) as { resources: string[] };
    assert.deepEqual(kustomization.resources, [`bases/${CRD_FILE}`]);
  });

  it('declares the names, scope and version API.md gives', () => {
    assert.equal(crd.apiVersion, 'apiextensions.k8s.io/v1');
    assert.equal(crd.kind, 'CustomResourceDefinition');
    assert.equal(crd.metadata.name, `${PLURAL}.${GROUP}`);
    assert.equal(crd.spec.group, GROUP);
    assert.equal(crd.spec.scope, 'Cluster');
    assert.deepEqual(crd.spec.names, {
      kind: KIND,
      listKind: `${KIND}List`,
      plural: PLURAL,
      singular: 'registrycredential',
      shortNames: ['regcred'],
      categories: ['regcred'],
    });
    assert.equal(crd.spec.versions.length, 1);
    assert.equal(version.name, VERSION);
    assert.equal(version.served, true);
    assert.equal(version.storage, true);
    assert.deepEqual(version.subresources?.status, {});
  });

  it('prints READY, SYNCED, TARGETS, NEXT REFRESH and AGE, and FAILED, REASON and MESSAGE with -o wide', () => {
    const columns = version.additionalPrinterColumns.map((c) => ({
      name: c.name.toUpperCase(),
      type: c.type,
      jsonPath: c.jsonPath,
      priority: c.priority ?? 0,
    }));
    assert.deepEqual(columns, [
      {
        name: 'READY',
        type: 'string',
        jsonPath: '.status.conditions[?(@.type=="Ready")].status',
        priority: 0,
      },
      { name: 'SYNCED', type: 'integer', jsonPath: '.status.syncedNamespaces', priority: 0 },
      { name: 'TARGETS', type: 'integer', jsonPath: '.status.targetNamespaces', priority: 0 },
      // Not type `date`: kubectl prints a future date as "<invalid>"; a string column shows it.
      { name: 'NEXT REFRESH', type: 'string', jsonPath: '.status.nextRefreshAt', priority: 0 },
      { name: 'AGE', type: 'date', jsonPath: '.metadata.creationTimestamp', priority: 0 },
      { name: 'FAILED', type: 'integer', jsonPath: '.status.failedNamespaceCount', priority: 1 },
      {
        name: 'REASON',
        type: 'string',
        jsonPath: '.status.conditions[?(@.type=="Ready")].reason',
        priority: 1,
      },
      {
        name: 'MESSAGE',
        type: 'string',
        jsonPath: '.status.conditions[?(@.type=="Ready")].message',
        priority: 1,
      },
    ]);
  });

  it('requires spec at the top and nothing of status', () => {
    assert.deepEqual(root.required, ['spec']);
    assert.equal(status.required, undefined);
  });

  it('declares exactly the spec fields RegistryCredentialSpec has, all the way down', () => {
    assert.deepEqual(
      sorted(valuePaths(everything.spec, 'spec')),
      sorted(schemaPaths(spec, 'spec')),
    );
  });

  it('declares exactly the status fields RegistryCredentialStatus has, all the way down', () => {
    assert.deepEqual(
      sorted(valuePaths(everything.status, 'status')),
      sorted(schemaPaths(status, 'status')),
    );
  });

  it('requires exactly the fields the TS interfaces require', () => {
    const nodes = new Map([...objectNodes(spec, 'spec'), ...objectNodes(status, 'status')]);
    assert.deepEqual(sorted(nodes.keys()), sorted(Object.keys(requiredFields)));
    for (const [path, node] of nodes) {
      assert.deepEqual(
        sorted(node.required ?? []),
        sorted(requiredFields[path] ?? []),
        `required fields of ${path}`,
      );
    }
  });

  it('offers the same credential sources in spec and status as SOURCE_KINDS', () => {
    const registryFields = Object.keys(at(spec, 'registries[]').properties ?? {});
    assert.deepEqual(sorted(registryFields.filter((f) => f !== 'server')), sorted(SOURCE_KINDS));
    assert.deepEqual(
      sorted((at(status, 'registries[].source').enum ?? []).map(String)),
      sorted(SOURCE_KINDS),
    );
  });

  it('allows the condition statuses ConditionStatus has', () => {
    assert.deepEqual(
      sorted((at(status, 'conditions[].status').enum ?? []).map(String)),
      sorted(exactly<ConditionStatus>()(['True', 'False', 'Unknown'])),
    );
  });

  it('bounds lists by the limits types.ts exports', () => {
    assert.equal(at(spec, 'registries').maxItems, MAX_REGISTRIES);
    assert.equal(at(spec, 'namespaces').maxItems, MAX_NAMESPACE_NAMES);
    assert.equal(at(status, 'failedNamespaces').maxItems, MAX_FAILED_NAMESPACES);
    assert.equal(at(status, 'missingNamespaces').maxItems, MAX_MISSING_NAMESPACES);
    // The operator stays strictly below the schema's bounds, so a status write never fails.
    assert.ok(MAX_STATUS_REGISTRIES < (at(status, 'registries').maxItems ?? 0));
    assert.equal(at(status, 'registries[].server').maxLength, MAX_STATUS_SERVER_LENGTH);
  });

  it('gives every CEL rule a message, so a rejection explains itself', () => {
    const silent: string[] = [];
    for (const [path, node] of allNodes(root, '')) {
      for (const rule of node['x-kubernetes-validations'] ?? []) {
        if (!rule.message && !rule.messageExpression) silent.push(`${path}: ${rule.rule}`);
      }
    }
    assert.deepEqual(silent, []);
  });
});
