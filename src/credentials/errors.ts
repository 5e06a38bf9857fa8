// Typed credential errors: each carries the condition reason it maps to, so the reconciler
// never parses message strings. Messages are shown in status and Events: they name Secrets
// and keys, never values read from them.

export type CredentialErrorReason =
  | 'InvalidSpec'
  | 'SourceNotFound'
  | 'SourceForbidden'
  | 'SourceInvalid'
  | 'RefreshFailed';

export const CREDENTIAL_ERROR_REASONS: readonly CredentialErrorReason[] = [
  'InvalidSpec',
  'SourceNotFound',
  'SourceForbidden',
  'SourceInvalid',
  'RefreshFailed',
];

export class CredentialError extends Error {
  readonly reason: CredentialErrorReason;

  /** `options.cause` is for logs of SDK failures; never pass an error that quotes secret data
   * (JSON.parse's SyntaxError quotes its input). */
  constructor(reason: CredentialErrorReason, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'CredentialError';
    this.reason = reason;
  }
}

export function isCredentialError(err: unknown): err is CredentialError {
  return err instanceof CredentialError;
}
