import assert from 'node:assert/strict';
import {
  CREDENTIAL_ERROR_REASONS,
  CredentialError,
  isCredentialError,
} from '../../src/credentials/errors.ts';

describe('CredentialError', () => {
  it('carries the condition reason the reconciler reports, with no parsing of messages', () => {
    for (const reason of CREDENTIAL_ERROR_REASONS) {
      const err = new CredentialError(
        reason,
        'Secret regcred-system/acme-basic has no key password',
      );
      assert.ok(err instanceof Error);
      assert.ok(isCredentialError(err));
      assert.equal(err.reason, reason);
      assert.equal(err.name, 'CredentialError');
      assert.match(String(err), /^CredentialError: Secret regcred-system/);
    }
  });

  it('is told apart from other errors', () => {
    assert.ok(!isCredentialError(new Error('x')));
    assert.ok(!isCredentialError({ reason: 'SourceInvalid', message: 'x' }));
  });

  it('keeps a cause for logs', () => {
    const cause = new Error('AccessDenied');
    assert.equal(
      new CredentialError('RefreshFailed', 'ECR refresh failed', { cause }).cause,
      cause,
    );
  });
});
