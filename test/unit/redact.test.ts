import assert from 'node:assert/strict';
import { SecretValues } from '../../src/observability/redact.ts';

describe('SecretValues', () => {
  it('scrubs a registered credential of 300 KiB without throwing (V8 caps RegExp size)', () => {
    const values = new SecretValues();
    const huge = `leak-${'x'.repeat(300 * 1024)}`;
    values.add(huge, 'short-secret');
    const text = `before ${huge} middle short-secret after`;
    assert.equal(values.scrub(text), 'before [REDACTED] middle [REDACTED] after');
    assert.equal(values.scrub(Buffer.from(huge).toString('base64')), '[REDACTED]');
  });
});
