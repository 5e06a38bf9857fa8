// What every cloud source hands back, what it is given, and the parts they share: reading the
// registry host out of `server`, and turning a cloud SDK failure into a short RefreshFailed
// message that carries no credential material.
import type { Registry } from '../../api/types.ts';
import { secretValues } from '../../observability/redact.ts';
import { CredentialError } from '../errors.ts';

/** A registry login obtained from a cloud: written under `server` as given in the spec. */
export interface CloudToken {
  username: string;
  password: string;
  expiresAt: Date;
}

/**
 * Where the SDKs send their requests, for tests against local fakes. In production every field
 * is absent: the SDK defaults apply, and so do the overrides the SDKs read from the environment
 * themselves (AWS_ENDPOINT_URL_ECR, AWS_ENDPOINT_URL_STS, GCE_METADATA_HOST,
 * AZURE_AUTHORITY_HOST, AZURE_POD_IDENTITY_AUTHORITY_HOST).
 */
export interface CloudEndpoints {
  /** ECR API endpoint, e.g. `http://127.0.0.1:4566`. */
  ecrEndpoint?: string;
  /** STS endpoint for AssumeRole and AssumeRoleWithWebIdentity. */
  stsEndpoint?: string;
  /** Replaces Google's fixed OAuth token URL (`https://oauth2.googleapis.com/token`). */
  gcpTokenUrl?: string;
  /** Lets an `external_account` ADC file name loopback token URLs. Tests only. */
  gcpAllowLoopbackUrls?: boolean;
  /** Entra ID authority host, e.g. `https://127.0.0.1:8443`; disables instance discovery. */
  azureAuthorityHost?: string;
  /** The ACR token exchange URL for a registry host (default `https://<host>/oauth2/exchange`). */
  acrExchangeUrlFor?: (registryHost: string) => string;
  /** Extra CA certificate (PEM) trusted for the Entra ID authority and the ACR exchange. */
  tlsCa?: string;
}

export interface CloudTokenInput {
  /** The registry entry: `server` and one of `ecr`, `gcp`, `acr`. */
  registry: Registry;
  /** The referenced Secret's data, decoded (see decodeSecretData); undefined without a secretRef. */
  secretData?: Readonly<Record<string, string>>;
  /** `namespace/name` of that Secret, for messages. */
  secretName?: string;
  endpoints?: CloudEndpoints;
  /** Aborts the cloud calls (the token cache aborts a fetch that outlives its deadline). */
  signal?: AbortSignal;
}

/** `host` of a `server` value: scheme, path and port stripped, lower-cased. */
export function registryHost(server: string): string {
  let rest = server.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  const slash = rest.indexOf('/');
  if (slash >= 0) rest = rest.slice(0, slash);
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    return (close > 0 ? rest.slice(0, close + 1) : rest).toLowerCase();
  }
  const colon = rest.indexOf(':');
  return (colon >= 0 ? rest.slice(0, colon) : rest).toLowerCase();
}

/** The value of a key of the source Secret, or SourceInvalid naming the key (never a value). */
export function requireSecretKey(input: CloudTokenInput, key: string, field: string): string {
  const where = input.secretName === undefined ? field : `Secret ${input.secretName}`;
  const data = input.secretData;
  if (data === undefined) throw new CredentialError('SourceInvalid', `${where} was not read`);
  const value = Object.hasOwn(data, key) ? data[key] : undefined;
  if (value === undefined) throw new CredentialError('SourceInvalid', `${where} has no key ${key}`);
  if (value.trim() === '')
    throw new CredentialError('SourceInvalid', `${where} key ${key} is empty`);
  return value;
}

export function optionalSecretKey(input: CloudTokenInput, key: string): string | undefined {
  const data = input.secretData;
  if (data === undefined || !Object.hasOwn(data, key)) return undefined;
  const value = data[key];
  return value === undefined || value.trim() === '' ? undefined : value;
}

const MAX_MESSAGE = 300;
// Shapes of credential material that may turn up in an SDK message even when nothing
// registered it: AWS access key ids, JWTs, bearer tokens, PEM blocks.
const SECRET_SHAPES: RegExp[] = [
  /\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}\b/g,
  /\beyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*/g,
  /\b(?:Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi,
  /-----BEGIN [A-Z ]+-----[\s\S]*?(?:-----END [A-Z ]+-----|$)/g,
  /\bya29\.[A-Za-z0-9._-]+/g,
];

/**
 * A cloud call failed: RefreshFailed with `<what>: <code>: <first line of the message>`,
 * scrubbed of every registered secret and of anything shaped like a credential. `extra` are
 * values this call holds that must not appear (registered too, so logs scrub them as well).
 */
export function refreshFailed(
  what: string,
  err: unknown,
  ...extra: Array<string | undefined>
): CredentialError {
  if (err instanceof CredentialError) return err;
  secretValues.add(...extra);
  return new CredentialError('RefreshFailed', cleanMessage(`${what}: ${describeError(err)}`));
}

/** `name: message` of an SDK error, the name left out when it adds nothing. */
function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const name = codeOf(err);
  const message = err.message.trim();
  if (name === undefined || message.startsWith(name)) return message || name || 'unknown error';
  return message === '' ? name : `${name}: ${message}`;
}

function codeOf(err: Error): string | undefined {
  const name = err.name;
  if (name && name !== 'Error' && name !== 'TypeError') return name;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(code) ? code : undefined;
}

/** Scrubbed, one line, at most MAX_MESSAGE characters. */
export function cleanMessage(text: string): string {
  let out = secretValues.scrub(text);
  for (const shape of SECRET_SHAPES) out = out.replace(shape, '[REDACTED]');
  out = out.split(/\r?\n/, 1)[0]?.trim() ?? '';
  return out.length > MAX_MESSAGE ? `${out.slice(0, MAX_MESSAGE - 1)}…` : out;
}

/** Rejects with an AbortError-like RefreshFailed once `signal` aborts; else `promise`. */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(aborted());
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(aborted());
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

function aborted(): CredentialError {
  return new CredentialError('RefreshFailed', 'the token request was aborted');
}

/** A claim of a JWT, read without verifying the JWT; undefined when absent or unreadable. */
export function jwtClaim(jwt: string, claim: string): unknown {
  const payload = jwt.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    return typeof claims === 'object' && claims !== null && !Array.isArray(claims)
      ? (claims as Record<string, unknown>)[claim]
      : undefined;
  } catch {
    return undefined;
  }
}

/** The `exp` claim (seconds since the epoch) of a JWT as a Date; undefined when absent. */
export function jwtExpiry(jwt: string): Date | undefined {
  const exp = jwtClaim(jwt, 'exp');
  return typeof exp === 'number' && Number.isFinite(exp) ? new Date(exp * 1000) : undefined;
}
