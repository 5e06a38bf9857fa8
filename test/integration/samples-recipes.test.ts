// The `basic` recipes in config/samples/recipes (IBM Cloud Container Registry, Oracle OCIR,
// Docker Hub with an access token), as a user would use them: their source Secrets hold obvious
// placeholders and opt in as sources; with real-looking values in their place, each
// RegistryCredential, as written, is accepted and reaches Ready, and the Secret it writes
// carries the username the registry expects ("iamapikey", "<tenancy>/<user>", the Docker ID).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import {
  KIND,
  type RegistryCredential,
  SOURCE_LABEL,
  SOURCE_LABEL_VALUE,
} from '../../src/api/types.ts';
import { Fixtures } from '../support/fixtures.ts';
import { uniqueName } from '../support/names.ts';
import { cluster, OPERATOR_NAMESPACE } from './hooks.ts';

const recipes = join(import.meta.dirname, '..', '..', 'config', 'samples', 'recipes');

interface SourceSecret {
  kind: 'Secret';
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  stringData?: Record<string, string>;
  data?: Record<string, string>;
}

/** What a user would put in place of each placeholder, by source Secret. */
const REAL_LOOKING: Record<string, { username: string; password: string }> = {
  'ibm-icr': { username: 'iamapikey', password: uniqueName('ibm-api-key') },
  'oracle-ocir': { username: 'axaxnpcrorw5/jdoe@example.com', password: uniqueName('oci-token') },
  dockerhub: { username: 'acme-robot', password: uniqueName('dckr_pat') },
};

describe('config/samples/recipes (basic sources for IBM ICR, Oracle OCIR, Docker Hub)', () => {
  let f: Fixtures;
  let creds: RegistryCredential[] = [];
  let secrets: SourceSecret[] = [];
  const made = { credentials: [] as string[], secrets: [] as string[], namespaces: [] as string[] };

  before(async () => {
    f = new Fixtures(cluster.kc);
    const built = await cluster.kubectlOk(['kustomize', recipes]);
    const documents = parseAllDocuments(built).map((d) => d.toJSON() as { kind: string });
    creds = documents.filter((d): d is RegistryCredential => d.kind === KIND);
    secrets = documents.filter((d): d is SourceSecret => d.kind === 'Secret');
  });

  after(async function (this: Mocha.Context) {
    this.timeout(120_000);
    for (const name of made.credentials) {
      await f.deleteCredential(name);
      await f.waitCredentialGone(name);
    }
    for (const name of made.secrets)
      await f.core.deleteNamespacedSecret({ namespace: OPERATOR_NAMESPACE, name });
    for (const name of made.namespaces) await f.core.deleteNamespace({ name });
  });

  it('has one basic recipe per registry, each reading a labelled Secret of placeholders', () => {
    assert.deepEqual(creds.map((c) => c.metadata.name).sort(), [
      'recipe-dockerhub',
      'recipe-ibm-icr',
      'recipe-oracle-ocir',
    ]);
    for (const cred of creds) {
      const registry = cred.spec.registries[0];
      const ref = registry?.basic?.secretRef;
      assert.ok(ref, `${cred.metadata.name} is a basic source`);
      const secret = secrets.find((s) => s.metadata.name === ref.name);
      assert.ok(secret, `${cred.metadata.name}: its Secret ${ref.name} is among the recipes`);
      assert.equal(secret.metadata.namespace, OPERATOR_NAMESPACE);
      assert.equal(secret.metadata.labels?.[SOURCE_LABEL], SOURCE_LABEL_VALUE, ref.name);
      const data = secret.stringData ?? {};
      assert.match(data.password ?? '', /^REPLACE-/, `${ref.name}: the password is a placeholder`);
      assert.ok(data.username, `${ref.name} has a username`);
    }
    const username = (name: string) =>
      secrets.find((s) => s.metadata.name === name)?.stringData?.username;
    assert.equal(username('ibm-icr'), 'iamapikey');
    assert.match(username('oracle-ocir') ?? '', /^REPLACE-tenancy-namespace\/REPLACE-user-name$/);
  });

  it('with the placeholders filled in, each recipe reaches Ready and writes the login it names', async function (this: Mocha.Context) {
    this.timeout(120_000);
    const tenant = await f.namespace('recipes');
    made.namespaces.push(tenant);
    for (const cred of creds) {
      const registry = cred.spec.registries[0];
      const refName = registry?.basic?.secretRef.name ?? '';
      const values = REAL_LOOKING[refName];
      assert.ok(values && registry?.server, `values for ${refName}`);
      // The recipe's own username where it is not a placeholder (ICR's "iamapikey").
      const recipeUser =
        secrets.find((s) => s.metadata.name === refName)?.stringData?.username ?? '';
      const username = recipeUser.includes('REPLACE') ? values.username : recipeUser;
      const sourceName = uniqueName(refName);
      await f.basicSecret(OPERATOR_NAMESPACE, sourceName, username, values.password);
      made.secrets.push(sourceName);
      // The recipe as written, pointed at this test's Secret and namespace only.
      const name = uniqueName(cred.metadata.name ?? 'recipe');
      const { namespaceSelector: _selector, ...spec } = cred.spec;
      made.credentials.push(name);
      await f.createCredential(name, {
        ...spec,
        secretName: name,
        namespaces: [tenant],
        registries: [{ ...registry, basic: { secretRef: { name: sourceName } } }],
      });
      await f.waitCondition(name, 'Ready', 'True', undefined, { timeoutMs: 60_000 });
      const written = await f.waitDockerConfig(tenant, name, () => true);
      assert.deepEqual(Object.keys(written?.auths ?? {}), [registry.server]);
      const entry = written?.auths[registry.server];
      assert.equal(entry?.username, username, cred.metadata.name);
      assert.equal(entry?.password, values.password, cred.metadata.name);
      assert.equal(
        entry?.auth,
        Buffer.from(`${username}:${values.password}`).toString('base64'),
        cred.metadata.name,
      );
    }
  });
});
