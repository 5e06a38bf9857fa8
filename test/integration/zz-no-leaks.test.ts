// Runs last (mocha loads files alphabetically): after the whole suite has driven the operator at
// debug level, none of the credential strings the tests wrote into source Secrets may appear in
// what the operator let out of the process: its logs, its Events, the RegistryCredential
// statuses and its /metrics.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Fixtures, registerCredentialStrings, usedCredentialStrings } from '../support/fixtures.ts';
import { uniqueName } from '../support/names.ts';
import { allOperatorLogs } from '../support/operator.ts';
import { cluster, OPERATOR_NAMESPACE } from './hooks.ts';

const SERVER = 'registry.example.com';

/** Every way a string can show up in text: as is, base64, and escaped inside a JSON string. */
function forms(value: string): string[] {
  const out = new Set([
    value,
    Buffer.from(value).toString('base64'),
    JSON.stringify(value).slice(1, -1),
  ]);
  return [...out];
}

interface Haystack {
  where: string;
  lines: string[];
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

    const found: string[] = [];
    for (const { where, lines } of haystacks) {
      const text = lines.join('\n');
      for (const secret of strings) {
        for (const form of forms(secret)) {
          if (!text.includes(form)) continue;
          const line = lines.find((l) => l.includes(form)) ?? '';
          found.push(`${where}: ${JSON.stringify(form)} in ${line.slice(0, 300)}`);
        }
      }
    }
    const counts = haystacks.map((h) => `${h.lines.length} ${h.where} lines`).join(', ');
    process.stdout.write(
      `      checked ${strings.length} credential strings (${strings.length * 3} forms` +
        `${skipped ? `, ${skipped} shorter than 4 skipped` : ''}) against ${counts}\n`,
    );

    for (const name of [good, broken]) await f.deleteCredential(name);
    for (const name of [good, broken]) await f.waitCredentialGone(name);
    await f.core.deleteNamespace({ name: ns });

    assert.ok(
      allOperatorLogs.some((l) => l.includes('"level":"debug"')),
      'logs are at debug level',
    );
    assert.deepEqual(found, [], 'credential strings leaked');
  });
});
