import assert from 'node:assert/strict';
import {
  basicAuthEntry,
  buildDockerConfigJson,
  parseDockerConfigSecret,
} from '../../src/credentials/dockerconfigjson.ts';
import { SecretValues, secretValues } from '../../src/observability/redact.ts';

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

describe('redaction of every form a credential takes', () => {
  it('scrubs a value as is, in base64, and escaped inside a JSON string', () => {
    const values = new SecretValues();
    const password = 'pa"ss\\word-1';
    values.add(password);
    for (const form of [
      password,
      Buffer.from(password).toString('base64'),
      JSON.stringify(password).slice(1, -1),
    ]) {
      assert.equal(values.scrub(`x ${form} y`), 'x [REDACTED] y', form);
    }
  });

  it('scrubs user:password and its base64 (the auth field), even with a short password', () => {
    const values = new SecretValues();
    values.addLogin('robot', 'pw1');
    assert.equal(values.scrub('robot:pw1'), '[REDACTED]');
    assert.equal(values.scrub(Buffer.from('robot:pw1').toString('base64')), '[REDACTED]');
  });

  it('keeps long values within a character budget, dropping the oldest first', () => {
    const values = new SecretValues();
    const config = (i: number) => `{"auths":{"r${i}":{"password":"${'p'.repeat(2_000_000)}"}}}`;
    for (let i = 0; i < 10; i++) values.add(config(i));
    assert.equal(values.scrub(config(9)), '[REDACTED]');
    assert.notEqual(values.scrub(config(0)), '[REDACTED]', 'the oldest config was dropped');
  });
});

describe('what the credential sources register', () => {
  it('a pull Secret the operator writes is scrubbed whole, as JSON and as its base64 data', () => {
    const json = buildDockerConfigJson(
      new Map([['registry.example.com', { username: 'robot', password: 'written-pw-1' }]]),
    );
    assert.equal(secretValues.scrub(`error: ${json}`), 'error: [REDACTED]');
    assert.equal(
      secretValues.scrub(`data: ${Buffer.from(json).toString('base64')}`),
      'data: [REDACTED]',
    );
  });

  it("a cloud token's auth (ACR: base64 of 00000000-0000-0000-0000-000000000000:token) is scrubbed", () => {
    const username = '00000000-0000-0000-0000-000000000000';
    const entry = basicAuthEntry(username, 'acr-refresh-token-1');
    assert.equal(secretValues.scrub(`auth=${entry.auth}`), 'auth=[REDACTED]');
    assert.equal(secretValues.scrub(`${username}:acr-refresh-token-1`), '[REDACTED]');
  });

  it('an imported entry registers its auth as given (unpadded) and user:password', () => {
    const unpadded = Buffer.from('importer:imported-pw-1').toString('base64').replace(/=+$/, '');
    const data = {
      '.dockerconfigjson': Buffer.from(
        JSON.stringify({ auths: { 'r.example.com': { auth: unpadded } } }),
      ).toString('base64'),
    };
    parseDockerConfigSecret('kubernetes.io/dockerconfigjson', data);
    assert.equal(secretValues.scrub(unpadded), '[REDACTED]');
    assert.equal(secretValues.scrub('importer:imported-pw-1'), '[REDACTED]');
  });
});
