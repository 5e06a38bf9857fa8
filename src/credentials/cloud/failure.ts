// Cloud SDK failures as one sentence a person can act on: which cloud (and region, tenant or
// client), which Secret and key when the credential came from one, what is wrong, and what to
// do; the SDK's own error goes to the debug log only (CredentialError.detail). Every sentence
// passes through cleanMessage, so no credential a message might quote survives.
import { secretValues } from '../../observability/redact.ts';
import { CredentialError } from '../errors.ts';
import { cleanMessage } from './cloud-token.ts';

/** Node and undici error codes of a request that never got an HTTP answer, by what they mean. */
const NETWORK_CODES: Record<string, string> = {
  ENOTFOUND: 'DNS',
  EAI_AGAIN: 'DNS',
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection reset',
  UND_ERR_SOCKET: 'connection reset',
  ETIMEDOUT: 'timed out',
  ESOCKETTIMEDOUT: 'timed out',
  UND_ERR_CONNECT_TIMEOUT: 'timed out',
  EHOSTUNREACH: 'no route to host',
  ENETUNREACH: 'no route to host',
  CERT_HAS_EXPIRED: 'TLS: the certificate has expired',
  ERR_TLS_CERT_ALTNAME_INVALID: 'TLS: the certificate is for another host',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'TLS: the certificate is not trusted',
  SELF_SIGNED_CERT_IN_CHAIN: 'TLS: the certificate is not trusted',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'TLS: the certificate is not trusted',
  UNABLE_TO_GET_ISSUER_CERT: 'TLS: the certificate is not trusted',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'TLS: the certificate is not trusted',
  EPROTO: 'TLS handshake failed',
};

export interface NetworkFailure {
  /** What went wrong: DNS, connection refused, TLS: …. */
  kind: string;
  /** The host the SDK tried, when the error says (a DNS failure does). */
  host?: string;
  tls: boolean;
}

/** Errors an SDK wrapped around the one that says what happened, outermost first. */
function chain(err: unknown): object[] {
  const out: object[] = [];
  const queue: unknown[] = [err];
  while (queue.length > 0 && out.length < 12) {
    const next = queue.shift();
    if (typeof next !== 'object' || next === null || out.includes(next)) continue;
    out.push(next);
    const e = next as { cause?: unknown; errors?: unknown };
    queue.push(e.cause);
    if (Array.isArray(e.errors)) queue.push(...e.errors);
  }
  return out;
}

/** The request never got an HTTP answer: why, and the host when the error names it. */
export function networkFailure(err: unknown): NetworkFailure | undefined {
  for (const e of chain(err)) {
    const { code, hostname, host } = e as { code?: unknown; hostname?: unknown; host?: unknown };
    if (typeof code !== 'string') continue;
    const kind =
      NETWORK_CODES[code] ?? (code.startsWith('ERR_SSL_') ? 'TLS handshake failed' : undefined);
    if (kind === undefined) continue;
    const named = typeof hostname === 'string' ? hostname : typeof host === 'string' ? host : '';
    return { kind, ...(named ? { host: named } : {}), tls: kind.startsWith('TLS') };
  }
  return undefined;
}

/**
 * "cannot reach <host> (<kind>): <what to do>". `endpointVariable` names the override a mirror
 * or a proxy would be configured with.
 */
export function cannotReach(
  net: NetworkFailure,
  fallbackHost: string,
  endpointVariable?: string,
): string {
  const host = net.host ?? fallbackHost;
  const hint = net.tls
    ? 'a TLS-inspecting proxy? trust its CA with NODE_EXTRA_CA_CERTS'
    : `check egress${endpointVariable ? ` or set ${endpointVariable}` : ''}`;
  return `cannot reach ${host} (${net.kind}): ${hint}`;
}

/** The host of a URL, or the value itself when it is not one. */
export function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/** The SDK's error as the debug log shows it: each wrapped error's name, code and first line. */
export function describeRaw(err: unknown): string {
  const parts: string[] = [];
  for (const e of chain(err)) {
    const { name, code, message, status, statusCode } = e as Record<string, unknown>;
    const http = typeof status === 'number' ? status : statusCode;
    const head = [
      typeof name === 'string' && name !== 'Error' ? name : undefined,
      typeof code === 'string' || (typeof code === 'number' && code !== http)
        ? String(code)
        : undefined,
      typeof http === 'number' ? `HTTP ${http}` : undefined,
    ].filter((p) => p !== undefined);
    const text = typeof message === 'string' ? (message.split(/\r?\n/, 1)[0] ?? '') : '';
    parts.push(`${head.length > 0 ? `[${head.join(' ')}] ` : ''}${text}`.trim());
  }
  return cleanMessage(parts.filter((p) => p !== '').join(' <- ')) || String(err);
}

/** RefreshFailed with one sentence, the SDK's error kept (scrubbed) for the debug log. */
export function explained(
  sentence: string,
  raw: unknown,
  ...held: Array<string | undefined>
): CredentialError {
  secretValues.add(...held);
  return new CredentialError('RefreshFailed', cleanMessage(sentence), {
    detail: describeRaw(raw),
  });
}

/** "(Code, HTTP 400)", leaving out what is unknown; empty when both are. */
export function codeAndStatus(code: string | undefined, status: number | undefined): string {
  const parts = [code, status === undefined ? undefined : `HTTP ${status}`].filter(
    (p): p is string => p !== undefined && p !== '',
  );
  return parts.length > 0 ? ` (${parts.join(', ')})` : '';
}

/** Throttled or failing on the provider's side: nothing to fix here, it is retried. */
export function transient(status: number | undefined, code: string | undefined): boolean {
  return (
    status === 429 ||
    (status !== undefined && status >= 500) ||
    (code !== undefined &&
      /^(?:Throttling|ThrottlingException|TooManyRequestsException|RequestLimitExceeded|rate_limit_exceeded|temporarily_unavailable|RESOURCE_EXHAUSTED)$/.test(
        code,
      ))
  );
}

/** "is throttling (…)" or "failed on its side (…)", then that the operator retries. */
export function transientSentence(
  who: string,
  status: number | undefined,
  code: string | undefined,
): string {
  const throttled =
    status === 429 ||
    (code !== undefined && /hrottl|TooMany|Limit|rate_limit|temporarily|EXHAUSTED/.test(code));
  return `${who} ${throttled ? 'is throttling requests' : 'failed on its side'}${codeAndStatus(code, status)}: retrying with backoff`;
}
