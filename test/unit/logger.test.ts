import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { createLogger } from '../../src/observability/logger.ts';
import { secretValues } from '../../src/observability/redact.ts';

function capture(): { stream: PassThrough; lines: () => Array<Record<string, unknown>> } {
  const stream = new PassThrough();
  const chunks: string[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk.toString('utf8')));
  return {
    stream,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

describe('createLogger', () => {
  it('writes JSON lines at its level and above, with registered credentials redacted', () => {
    const out = capture();
    const log = createLogger('info', out.stream);
    secretValues.add('hunter2-logger-test');
    log.info('synced', { namespace: 'team-a', note: 'password hunter2-logger-test' });
    log.warn('slow', { ms: 12 });
    log.debug('reconciled', { key: 'rc/team-a' });
    const lines = out.lines();
    assert.deepEqual(
      lines.map((l) => [l.level, l.message]),
      [
        ['info', 'synced'],
        ['warn', 'slow'],
      ],
    );
    assert.equal(lines[0]?.namespace, 'team-a');
    assert.doesNotMatch(JSON.stringify(lines), /hunter2-logger-test/);
  });

  it('does no work for a line below its level (winston would format it, then drop it)', () => {
    const out = capture();
    const log = createLogger('info', out.stream);
    let read = 0;
    const fields = {
      get key() {
        read += 1;
        return 'rc/team-a';
      },
    };
    for (let i = 0; i < 100; i++) log.debug('reconciled', fields);
    log.child({ component: 'informer' }).debug('listed', fields);
    assert.equal(read, 0, 'the fields of a dropped line are never read');
    assert.deepEqual(out.lines(), []);

    const debug = createLogger('debug', out.stream);
    debug.debug('reconciled', fields);
    assert.equal(read, 1);
    assert.equal(out.lines()[0]?.key, 'rc/team-a');
  });
});
