// The Pod webhook's flags as an operator sets them: off unless an address is given; the serving
// certificate's names from the Service and the namespace plus any extra hosts; lifetimes as Go
// durations, the CA's no shorter than the certificate's; --evict-stuck-pods off by default.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ConfigError, loadConfig, type OperatorConfig, usage } from '../../src/config.ts';

const ENV = { REGCRED_NAMESPACE: 'regcred-system' };

function load(argv: string[], env: NodeJS.ProcessEnv = {}): OperatorConfig {
  return loadConfig(argv, { ...ENV, ...env }) as OperatorConfig;
}

describe('the Pod webhook flags', () => {
  it('serve no webhook and evict nothing unless asked', () => {
    const config = load([]);
    assert.equal(config.podWebhook, undefined);
    assert.equal(config.evictStuckPods, false);
  });

  it('with an address, defaults that match config/webhook', () => {
    const hook = load(['--pod-webhook-address=:9443']).podWebhook;
    assert.deepEqual(hook, {
      address: ':9443',
      certDir: '',
      certSecret: 'regcred-operator-webhook-tls',
      configurationName: 'regcred-operator-pod-webhook',
      hosts: [
        'regcred-operator-webhook.regcred-system.svc',
        'regcred-operator-webhook.regcred-system.svc.cluster.local',
      ],
      caLifetimeMs: 8760 * 3_600_000,
      certLifetimeMs: 720 * 3_600_000,
    });
  });

  it('name the objects config/webhook ships, and the port its manager patch serves on', () => {
    const dir = join(import.meta.dirname, '..', '..', 'config', 'webhook');
    const read = (file: string) => parse(readFileSync(join(dir, file), 'utf8'));
    const configuration = read('mutating_webhook_configuration.yaml');
    const service = read('service.yaml');
    const patch = read('manager_webhook_patch.yaml') as Array<{ value: unknown }>;
    const hook = load(['--pod-webhook-address=:9443']).podWebhook;
    assert.equal(configuration.metadata.name, hook?.configurationName);
    assert.equal(configuration.webhooks[0].clientConfig.service.name, service.metadata.name);
    assert.ok(hook?.hosts.includes(`${service.metadata.name}.regcred-system.svc`));
    assert.equal(configuration.webhooks[0].failurePolicy, 'Ignore');
    assert.equal(configuration.webhooks[0].sideEffects, 'None');
    assert.deepEqual(
      patch.map((op) => op.value),
      [`--pod-webhook-address=${hook?.address}`, { name: 'webhook', containerPort: 9443 }],
    );
  });

  it('take every value from the environment too, the flag winning', () => {
    const config = load(['--pod-webhook-cert-lifetime=1h'], {
      REGCRED_POD_WEBHOOK_ADDRESS: '127.0.0.1:9443',
      REGCRED_POD_WEBHOOK_HOSTS: '127.0.0.1, hook.example.com',
      REGCRED_POD_WEBHOOK_CERT_LIFETIME: '2h',
      REGCRED_POD_WEBHOOK_CONFIGURATION: '',
      REGCRED_EVICT_STUCK_PODS: 'true',
    });
    assert.equal(config.podWebhook?.certLifetimeMs, 3_600_000);
    assert.equal(config.podWebhook?.configurationName, '');
    assert.deepEqual(config.podWebhook?.hosts.slice(2), ['127.0.0.1', 'hook.example.com']);
    assert.equal(config.evictStuckPods, true);
    assert.match(usage(), /--pod-webhook-address .*REGCRED_POD_WEBHOOK_ADDRESS/);
  });

  it('refuse what cannot work, naming the flag', () => {
    const cases: Array<[string[], RegExp]> = [
      [['--pod-webhook-address=9443'], /--pod-webhook-address/],
      [['--pod-webhook-address=:9443', '--pod-webhook-hosts=a b'], /--pod-webhook-hosts/],
      [['--pod-webhook-address=:9443', '--pod-webhook-service=Bad_Name'], /--pod-webhook-service/],
      [
        ['--pod-webhook-address=:9443', '--pod-webhook-cert-lifetime=10ms'],
        /--pod-webhook-cert-lifetime/,
      ],
      [
        [
          '--pod-webhook-address=:9443',
          '--pod-webhook-ca-lifetime=1h',
          '--pod-webhook-cert-lifetime=2h',
        ],
        /--pod-webhook-ca-lifetime must not be shorter/,
      ],
      [['--evict-stuck-pods=maybe'], /--evict-stuck-pods/],
    ];
    for (const [argv, message] of cases) {
      assert.throws(
        () => load(argv),
        (error: unknown) => error instanceof ConfigError && message.test(error.message),
      );
    }
  });
});
