// `kubectl regcred explain` shows a Pod's pull Secrets to whoever runs it: an auths key written
// with user info (`https://user:password@host`, which the kubelet accepts and ignores) must not
// print that password; and an image a tenant made megabytes long must not hang it.
import assert from 'node:assert/strict';
import type { RegistryCredential } from '../../src/api/types.ts';
import {
  type ExplainInput,
  type ExplainSecret,
  explain,
  type Read,
} from '../../src/explain/explain.ts';
import { renderExplanation } from '../../src/explain/render.ts';

const NOW = new Date('2026-12-06T12:00:00Z');

function ok<T>(value: T): Read<T> {
  return { ok: true, value };
}

function pullSecret(name: string, auths: Record<string, unknown>): ExplainSecret {
  return {
    name,
    type: 'kubernetes.io/dockerconfigjson',
    data: { '.dockerconfigjson': Buffer.from(JSON.stringify({ auths })).toString('base64') },
  };
}

function input(image: string, secrets: ExplainSecret[]): ExplainInput {
  const credential: RegistryCredential = {
    apiVersion: 'regcred.dev/v1alpha1',
    kind: 'RegistryCredential',
    metadata: { name: 'acme' },
    spec: {
      namespaceSelector: { matchLabels: { tenant: 'acme' } },
      registries: [
        {
          server: 'https://admin:rc-secret@registry.example.com',
          basic: { secretRef: { name: 's' } },
        },
      ],
    },
  };
  return {
    image,
    namespace: 'tenant-a',
    subject: { kind: 'ServiceAccount', name: 'default' },
    serviceAccount: ok({ name: 'default', pullSecrets: secrets.map((s) => s.name) }),
    secrets: new Map(secrets.map((s) => [s.name, ok(s)])),
    namespaceInfo: ok({
      name: 'tenant-a',
      labels: { tenant: 'other' },
      annotations: {},
      terminating: false,
    }),
    credentials: ok([credential]),
    now: NOW,
  };
}

describe('explain with what a tenant wrote', () => {
  it('never prints the user info of an auths key, in text or JSON', () => {
    const secrets = [
      pullSecret('one', {
        'https://robot:hunter2-in-url@registry.example.com': { username: 'robot', password: 'x' },
        'robot2:second-in-url@registry.example.com': { username: 'robot2', password: 'y' },
      }),
      // A near miss (host matches, port does not), whose message quotes the key.
      pullSecret('two', {
        'https://bot:third-in-url@registry.example.com:5000': { auth: 'Ym90Onk=' },
      }),
    ];
    for (const image of [
      'registry.example.com/team/app:1',
      'registry.example.com:443/team/app:1',
    ]) {
      const e = explain(input(image, secrets));
      const printed = `${renderExplanation(e, NOW)}\n${JSON.stringify(e)}`;
      for (const secret of ['hunter2-in-url', 'second-in-url', 'third-in-url', 'rc-secret']) {
        assert.doesNotMatch(printed, new RegExp(secret), `${secret} printed for ${image}`);
      }
      assert.match(printed, /registry\.example\.com/);
    }
  });

  it('answers at once for a megabyte-long image', () => {
    const started = performance.now();
    const e = explain(
      input(`registry.example.com/${'a-'.repeat(512 * 1024)}b:1`, [
        pullSecret('one', { 'registry.example.com': { username: 'robot', password: 'x' } }),
      ]),
    );
    assert.ok(
      performance.now() - started < 500,
      `took ${(performance.now() - started).toFixed(0)} ms`,
    );
    assert.equal(e.candidates.length, 0);
    assert.equal(e.reasons[0]?.code, 'InvalidImage');
    // The answer does not repeat the megabyte either.
    assert.ok(renderExplanation(e, NOW).length < 10_000);
  });
});
