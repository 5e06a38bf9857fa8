// Runs last (mocha loads files alphabetically): after the whole suite has driven the operator at
// debug level, none of the credential strings the tests wrote into source Secrets, or read from
// the Secrets the operator wrote (passwords, `user:password`, `auth` fields, cloud tokens such
// as ACR's, and whole configs), may appear in any form (as is, base64, JSON-escaped) in what the
// operator let out of the process: its logs, its Events, the RegistryCredential statuses and its
// /metrics.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Fixtures, registerCredentialStrings, usedCredentialStrings } from '../support/fixtures.ts';
import { findLeaks, type Haystack } from '../support/leaks.ts';
import { uniqueName } from '../support/names.ts';
import { allOperatorLogs } from '../support/operator.ts';
import { waitFor, waitUntil } from '../support/wait.ts';
import { cluster, OPERATOR_NAMESPACE } from './hooks.ts';

const SERVER = 'registry.example.com';

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** Refuses dockerconfigjson Secrets in one namespace, quoting the config in the message. */
function echoPolicy(name: string, namespace: string): string {
  return `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: ${name}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - apiGroups: [""]
        apiVersions: [v1]
        operations: [CREATE, UPDATE]
        resources: [secrets]
  validations:
    - expression: "object.type != 'kubernetes.io/dockerconfigjson'"
      messageExpression: "'${name} refuses ' + string(object.data['.dockerconfigjson'])"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: ${name}
spec:
  policyName: ${name}
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: { kubernetes.io/metadata.name: ${namespace} }
`;
}

describe('no credential leaks (the whole suite, at debug level)', () => {
  let f: Fixtures;
  before(() => {
    f = new Fixtures(cluster.kc);
  });

  it('no credential string any test used appears in logs, Events, statuses or metrics', async function (this: Mocha.Context) {
    this.timeout(180_000);
    // The paths most likely to leak, so this check means something even when run on its own:
    // a fan-out, a rotation, and a source the operator must refuse (a password with a line break
    // yields an error message about that very key).
    const ns = await f.namespace('leaks');
    const source = uniqueName('src');
    await f.basicSecret(
      OPERATOR_NAMESPACE,
      source,
      'robot',
      `leak-${randomBytes(8).toString('hex')}`,
    );
    const good = uniqueName('rc');
    await f.createCredential(good, {
      namespaces: [ns],
      registries: [{ server: SERVER, basic: { secretRef: { name: source } } }],
    });
    await f.waitCondition(good, 'Ready', 'True');
    const rotated = `leak-${randomBytes(8).toString('hex')}`;
    await f.setSecretData(OPERATOR_NAMESPACE, source, { password: rotated });
    await f.waitDockerConfig(ns, good, (c) => c.auths[SERVER]?.password === rotated);

    const brokenSource = uniqueName('src');
    const brokenPassword = `leak-${randomBytes(8).toString('hex')}`;
    registerCredentialStrings(brokenPassword);
    await f.basicSecret(OPERATOR_NAMESPACE, brokenSource, 'robot', `${brokenPassword}\n`);
    const broken = uniqueName('rc');
    await f.createCredential(broken, {
      namespaces: [ns],
      secretName: `${broken}-pull`,
      registries: [{ server: SERVER, basic: { secretRef: { name: brokenSource } } }],
    });
    await f.waitCondition(broken, 'Ready', 'False', 'SourceInvalid');

    // An API error that quotes the Secret being written (here an admission policy that refuses
    // it with its whole .dockerconfigjson in the message; a webhook could do the same): the
    // refusal reaches failedNamespaces, Events and logs, and must carry no credential in any
    // form. The credential imports an entry (an unpadded auth) beside a basic one.
    const echoNs = await f.namespace('leaks-echo');
    const policy = uniqueName('echo-pull-secret');
    await cluster.kubectlOk(['apply', '-f', '-'], { input: echoPolicy(policy, echoNs) });
    await waitUntil(`the admission policy ${policy} to refuse Secrets in ${echoNs}`, async () => {
      const probe = uniqueName('probe');
      try {
        await f.core.createNamespacedSecret({
          namespace: echoNs,
          body: {
            metadata: { name: probe },
            type: 'kubernetes.io/dockerconfigjson',
            stringData: { '.dockerconfigjson': '{"auths":{}}' },
          },
        });
      } catch {
        return true;
      }
      await f.core.deleteNamespacedSecret({ namespace: echoNs, name: probe });
      return false;
    });
    const importedPassword = `leak-${randomBytes(8).toString('hex')}`;
    const unpaddedAuth = Buffer.from(`importer:${importedPassword}`)
      .toString('base64')
      .replace(/=+$/, '');
    const importSource = uniqueName('src');
    await f.dockerConfigSecret(OPERATOR_NAMESPACE, importSource, {
      auths: { 'import.example.com': { auth: unpaddedAuth } },
    });
    const echoed = uniqueName('rc');
    await f.createCredential(echoed, {
      namespaces: [echoNs],
      registries: [
        { server: SERVER, basic: { secretRef: { name: source } } },
        { dockerConfig: { secretRef: { name: importSource } } },
      ],
    });
    const refused = await waitFor(
      `${echoed} to report the refusal in ${echoNs}`,
      () => f.getCredential(echoed),
      (cred) =>
        cred.status?.failedNamespaces?.some(
          (failed) => failed.name === echoNs && failed.message.includes(policy),
        ) === true,
    );
    const refusal = refused.status?.failedNamespaces?.find((x) => x.name === echoNs)?.message;
    assert.match(refusal ?? '', /\[REDACTED\]/, 'the refusal quoted the config, scrubbed');
    // Every form of what the operator would have written is looked for below.
    const wouldWrite = JSON.stringify({
      auths: {
        'import.example.com': {
          username: 'importer',
          password: importedPassword,
          auth: Buffer.from(`importer:${importedPassword}`).toString('base64'),
        },
        [SERVER]: { username: 'robot', password: rotated, auth: b64(`robot:${rotated}`) },
      },
    });
    registerCredentialStrings(
      importedPassword,
      `importer:${importedPassword}`,
      unpaddedAuth,
      wouldWrite,
    );

    const strings = usedCredentialStrings().filter((s) => s.length >= 4);
    const skipped = usedCredentialStrings().length - strings.length;
    assert.ok(strings.length >= 3, 'the tests registered their credential strings');

    const events = await f.core.listEventForAllNamespaces();
    const creds = JSON.parse(
      await cluster.kubectlOk(['get', 'registrycredentials', '-o', 'json']),
    ) as { items: Array<{ metadata: { name: string }; status?: unknown }> };
    const haystacks: Haystack[] = [
      { where: 'operator logs', lines: [...allOperatorLogs] },
      { where: 'Events', lines: events.items.map((e) => JSON.stringify(e)) },
      {
        where: 'RegistryCredential statuses',
        lines: creds.items.map((c) => `${c.metadata.name}: ${JSON.stringify(c.status ?? {})}`),
      },
      { where: 'operator /metrics', lines: (await cluster.operator.metrics()).split('\n') },
    ];

    const found = findLeaks(strings, haystacks);
    const counts = haystacks.map((h) => `${h.lines.length} ${h.where} lines`).join(', ');
    process.stdout.write(
      `      checked ${strings.length} credential strings (${strings.length * 3} forms` +
        `${skipped ? `, ${skipped} shorter than 4 skipped` : ''}) against ${counts}\n`,
    );

    for (const name of [good, broken, echoed]) await f.deleteCredential(name);
    for (const name of [good, broken, echoed]) await f.waitCredentialGone(name);
    await cluster.kubectlOk([
      'delete',
      'validatingadmissionpolicybinding,validatingadmissionpolicy',
      policy,
    ]);
    for (const name of [source, brokenSource, importSource]) {
      await f.core.deleteNamespacedSecret({ namespace: OPERATOR_NAMESPACE, name });
    }
    await f.core.deleteNamespace({ name: ns });
    await f.core.deleteNamespace({ name: echoNs });

    assert.ok(
      allOperatorLogs.some((l) => l.includes('"level":"debug"')),
      'logs are at debug level',
    );
    assert.deepEqual(found, [], 'credential strings leaked');
  });
});
