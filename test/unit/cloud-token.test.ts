import assert from 'node:assert/strict';
import type { V1Secret } from '@kubernetes/client-node';
import {
  cleanMessage,
  jwtClaim,
  jwtExpiry,
  refreshFailed,
  registryHost,
} from '../../src/credentials/cloud/cloud-token.ts';
import { decodeSecretData } from '../../src/credentials/cloud/secret-data.ts';
import { CredentialError } from '../../src/credentials/errors.ts';
import { distinctive, unsignedJwt } from '../support/fakes/fake-server.ts';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

describe('cloud token helpers', () => {
  it('reads the registry host out of a server value', () => {
    assert.equal(registryHost('myregistry.azurecr.io'), 'myregistry.azurecr.io');
    assert.equal(registryHost('https://MyRegistry.azurecr.io/v2/'), 'myregistry.azurecr.io');
    assert.equal(registryHost('registry.example.com:5000/team'), 'registry.example.com');
    assert.equal(registryHost('http://[::1]:5000'), '[::1]');
  });

  it('decodes a Secret, stringData over data, and names an undecodable key', () => {
    const secret: V1Secret = {
      metadata: { namespace: 'regcred-system', name: 'aws-keys' },
      data: { AWS_ACCESS_KEY_ID: b64('AKIAEXAMPLE'), AWS_SECRET_ACCESS_KEY: b64('from-data') },
      stringData: { AWS_SECRET_ACCESS_KEY: 'from-stringData' },
    };
    assert.deepEqual(decodeSecretData(secret), {
      AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'from-stringData',
    });
    const value = distinctive('not-base64');
    assert.throws(
      () => decodeSecretData({ ...secret, data: { 'key.json': `${value}!` }, stringData: {} }),
      (err: unknown) =>
        err instanceof CredentialError &&
        err.reason === 'SourceInvalid' &&
        err.message === 'Secret regcred-system/aws-keys key key.json is not valid base64',
    );
    assert.throws(
      () =>
        decodeSecretData({
          ...secret,
          data: { clientSecret: Buffer.from([0xff, 0xfe]).toString('base64') },
        }),
      /key clientSecret is not valid UTF-8/,
    );
  });

  it('reads JWT claims without verifying them', () => {
    const jwt = unsignedJwt({ exp: 1_900_000_000, tid: 'tenant' });
    assert.deepEqual(jwtExpiry(jwt), new Date(1_900_000_000_000));
    assert.equal(jwtClaim(jwt, 'tid'), 'tenant');
    assert.equal(jwtExpiry('not-a-jwt'), undefined);
    assert.equal(jwtExpiry(unsignedJwt({ exp: 'soon' })), undefined);
  });

  it('keeps one short line of a failure, without anything shaped like a credential', () => {
    const jwt = unsignedJwt({ sub: 'x' });
    const message = cleanMessage(
      `denied for AKIAIOSFODNN7EXAMPLE with Bearer ${distinctive('tok')} and ${jwt}\n  at stack`,
    );
    assert.equal(message, 'denied for [REDACTED] with [REDACTED] and [REDACTED]');
    assert.ok(cleanMessage('x'.repeat(1000)).length <= 300);
    assert.equal(
      cleanMessage('-----BEGIN PRIVATE KEY-----\nMIIabc\n-----END PRIVATE KEY----- rest'),
      '[REDACTED] rest',
    );
  });

  it('wraps SDK errors as RefreshFailed, names their code, and registers what the call held', () => {
    const secret = distinctive('held-secret');
    const sdkError = Object.assign(new Error(`no access with ${secret}`), {
      name: 'AccessDeniedException',
    });
    const err = refreshFailed('ecr', sdkError, secret);
    assert.equal(err.reason, 'RefreshFailed');
    assert.equal(err.message, 'ecr: AccessDeniedException: no access with [REDACTED]');
    const passthrough = new CredentialError('SourceInvalid', 'kept');
    assert.equal(refreshFailed('ecr', passthrough), passthrough);
  });
});
