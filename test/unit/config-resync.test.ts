// --informer-resync as an operator sets it: the flag or REGCRED_INFORMER_RESYNC, a Go duration,
// 10 minutes when unset, 0 to turn the resync off, anything shorter than a second refused by name.
import assert from 'node:assert/strict';
import { ConfigError, loadConfig, type OperatorConfig, usage } from '../../src/config.ts';

const ENV = { REGCRED_NAMESPACE: 'regcred-system' };

function resyncMs(argv: string[], env: NodeJS.ProcessEnv = {}): number {
  const config = loadConfig(argv, { ...ENV, ...env }) as OperatorConfig;
  return config.informerResyncMs;
}

describe('--informer-resync', () => {
  it('replays the caches every 10 minutes when not set', () => {
    assert.equal(resyncMs([]), 600_000);
  });

  it('takes a Go duration from the flag or from REGCRED_INFORMER_RESYNC, the flag winning', () => {
    assert.equal(resyncMs(['--informer-resync=2s']), 2_000);
    assert.equal(resyncMs([], { REGCRED_INFORMER_RESYNC: '1h30m' }), 5_400_000);
    assert.equal(resyncMs(['--informer-resync', '3m'], { REGCRED_INFORMER_RESYNC: '1h' }), 180_000);
  });

  it('turns the resync off with 0', () => {
    assert.equal(resyncMs(['--informer-resync=0']), 0);
    assert.equal(resyncMs([], { REGCRED_INFORMER_RESYNC: '0s' }), 0);
  });

  it('refuses a period under a second, a negative one and a bare number, naming the flag', () => {
    for (const raw of ['500ms', '-1m', '10', 'ten minutes']) {
      assert.throws(
        () => resyncMs([`--informer-resync=${raw}`]),
        (error: unknown) =>
          error instanceof ConfigError &&
          error.message.includes('--informer-resync') &&
          error.message.includes(JSON.stringify(raw)),
        raw,
      );
    }
  });

  it('is listed in --help with its variable and default', () => {
    const line = usage()
      .split('\n')
      .find((l) => l.includes('--informer-resync'));
    assert.ok(line);
    assert.match(line, /REGCRED_INFORMER_RESYNC/);
    assert.match(line, /\(default "10m"\)/);
  });
});
