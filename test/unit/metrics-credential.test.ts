// A RegistryCredential's failed namespaces and last sync as Prometheus sees them.
import assert from 'node:assert/strict';
import { Metrics } from '../../src/observability/metrics.ts';

async function sample(metrics: Metrics, name: string): Promise<string | undefined> {
  const text = await metrics.registry.metrics();
  return text.split('\n').find((line) => line.startsWith(`${name}{registrycredential="acme"}`));
}

describe('per-credential failure and sync metrics', () => {
  it('counts every failed namespace, stamps each sync but not a suspended one, and forgets a deleted credential', async () => {
    const metrics = new Metrics({ processMetrics: false });
    metrics.credentialStatus(
      'acme',
      { failedNamespaceCount: 25, failedNamespaces: new Array(20).fill({}) },
      () => 1_700_000_000_000,
    );
    assert.equal(
      await sample(metrics, 'regcred_failed_namespaces'),
      'regcred_failed_namespaces{registrycredential="acme"} 25',
    );
    assert.equal(
      await sample(metrics, 'regcred_last_sync_timestamp_seconds'),
      'regcred_last_sync_timestamp_seconds{registrycredential="acme"} 1700000000',
    );
    metrics.credentialStatus(
      'acme',
      { conditions: [{ type: 'Synced', reason: 'Suspended' }] },
      () => 1_700_000_600_000,
    );
    assert.equal(
      await sample(metrics, 'regcred_failed_namespaces'),
      'regcred_failed_namespaces{registrycredential="acme"} 0',
    );
    assert.equal(
      await sample(metrics, 'regcred_last_sync_timestamp_seconds'),
      'regcred_last_sync_timestamp_seconds{registrycredential="acme"} 1700000000',
    );
    metrics.credentialStatus('acme', undefined);
    assert.equal(await sample(metrics, 'regcred_failed_namespaces'), undefined);
    assert.equal(await sample(metrics, 'regcred_last_sync_timestamp_seconds'), undefined);
  });
});
