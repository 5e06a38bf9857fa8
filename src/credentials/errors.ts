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

export interface CredentialErrorOptions extends ErrorOptions {
  /** What the cloud SDK said, scrubbed: for the debug log, never for status or Events. */
  detail?: string;
}

export class CredentialError extends Error {
  readonly reason: CredentialErrorReason;
  /** The SDK's own error behind a RefreshFailed sentence (scrubbed), for the debug log. */
  readonly detail?: string;

  /** `options.cause` is for logs of SDK failures; never pass an error that quotes secret data
   * (JSON.parse's SyntaxError quotes its input). */
  constructor(reason: CredentialErrorReason, message: string, options?: CredentialErrorOptions) {
    const { detail, ...errorOptions } = options ?? {};
    super(message, errorOptions);
    this.name = 'CredentialError';
    this.reason = reason;
    if (detail !== undefined) this.detail = detail;
  }
}

export function isCredentialError(err: unknown): err is CredentialError {
  return err instanceof CredentialError;
}
