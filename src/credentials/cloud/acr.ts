// Azure Container Registry: an Entra ID token for Azure Resource Manager, exchanged at the
// registry's /oauth2/exchange for an ACR refresh token, which is the password of the all-zero
// user (as `az acr login` does). The Entra token comes from a service principal's secret in a
// Secret, else workload identity (AZURE_FEDERATED_TOKEN_FILE), else managed identity. The
// refresh token's JWT `exp` drives the schedule (about 3 h).
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import {
  ClientSecretCredential,
  ManagedIdentityCredential,
  type TokenCredential,
  type TokenCredentialOptions,
  WorkloadIdentityCredential,
} from '@azure/identity';
import { secretValues } from '../../observability/redact.ts';
import { CredentialError } from '../errors.ts';
import {
  abortable,
  type CloudEndpoints,
  type CloudToken,
  type CloudTokenInput,
  cleanMessage,
  jwtClaim,
  jwtExpiry,
  refreshFailed,
  registryHost,
  requireSecretKey,
} from './cloud-token.ts';

export const ACR_USERNAME = '00000000-0000-0000-0000-000000000000';
export const ARM_SCOPE = 'https://management.azure.com/.default';
export const DEFAULT_ACR_SECRET_KEY = 'clientSecret';
const ACR_HOST = /^[a-z0-9][a-z0-9.-]*\.azurecr\.(?:io|cn|us)$/;
const EXCHANGE_TIMEOUT_MS = 30_000;
const MAX_RESPONSE_BYTES = 1 << 20;

export async function fetchAcrToken(input: CloudTokenInput): Promise<CloudToken> {
  const acr = input.registry.acr;
  const server = input.registry.server;
  if (acr === undefined || !server) {
    throw new CredentialError('InvalidSpec', 'acr: the registry needs a server and an acr block');
  }
  const host = registryHost(server);
  if (!ACR_HOST.test(host)) {
    // The Entra token (good for all of Azure Resource Manager) is sent to this host.
    throw new CredentialError(
      'InvalidSpec',
      'acr: server must be an Azure Container Registry host (*.azurecr.io, *.azurecr.cn or *.azurecr.us)',
    );
  }
  const endpoints = input.endpoints ?? {};
  const held: string[] = [];
  const options = credentialOptions(endpoints);
  let credential: TokenCredential;
  let what: string;
  let tenantId = acr.tenantId || undefined;

  if (acr.clientSecretRef) {
    if (!acr.tenantId || !acr.clientId) {
      throw new CredentialError(
        'InvalidSpec',
        'acr: tenantId and clientId are required with clientSecretRef',
      );
    }
    const key = acr.clientSecretRef.key || DEFAULT_ACR_SECRET_KEY;
    const secret = requireSecretKey(input, key, 'acr.clientSecretRef').trim();
    secretValues.add(secret);
    held.push(secret);
    what = 'acr (client secret)';
    credential = create(
      what,
      () => new ClientSecretCredential(acr.tenantId ?? '', acr.clientId ?? '', secret, options),
    );
  } else if (process.env.AZURE_FEDERATED_TOKEN_FILE) {
    tenantId ??= process.env.AZURE_TENANT_ID || undefined;
    what = 'acr (workload identity)';
    credential = create(
      what,
      () =>
        new WorkloadIdentityCredential({
          ...options,
          ...(tenantId ? { tenantId } : {}),
          ...(acr.clientId ? { clientId: acr.clientId } : {}),
        }),
    );
  } else {
    what = 'acr (managed identity)';
    credential = create(
      what,
      () =>
        new ManagedIdentityCredential({
          ...options,
          ...(acr.clientId ? { clientId: acr.clientId } : {}),
        }),
    );
  }

  let aadToken: string;
  try {
    const token = await credential.getToken(
      ARM_SCOPE,
      input.signal ? { abortSignal: input.signal } : {},
    );
    if (!token?.token) throw new CredentialError('RefreshFailed', `${what}: no Entra ID token`);
    aadToken = token.token;
    secretValues.add(aadToken);
  } catch (err) {
    throw refreshFailed(what, azureError(err), ...held);
  }
  held.push(aadToken);
  // Managed identity knows no tenant up front: the token says which one it belongs to.
  const tid = jwtClaim(aadToken, 'tid');
  tenantId ??= typeof tid === 'string' ? tid : undefined;

  const url = endpoints.acrExchangeUrlFor?.(host) ?? `https://${host}/oauth2/exchange`;
  const form = new URLSearchParams({
    grant_type: 'access_token',
    service: host,
    access_token: aadToken,
  });
  if (tenantId) form.set('tenant', tenantId);
  let refreshToken: string;
  try {
    const response = await abortable(
      postForm(url, form, endpoints.tlsCa, input.signal),
      input.signal,
    );
    refreshToken = exchangeResult(response);
  } catch (err) {
    throw refreshFailed('acr token exchange', err, ...held);
  }
  // The token, and the `auth` it becomes (base64 of "00000000-…:token"), from the moment it exists.
  secretValues.addLogin(ACR_USERNAME, refreshToken);
  const expiresAt = jwtExpiry(refreshToken);
  if (expiresAt === undefined) {
    throw new CredentialError(
      'RefreshFailed',
      'acr token exchange: the refresh token has no exp claim',
    );
  }
  return { username: ACR_USERNAME, password: refreshToken, expiresAt };
}

function credentialOptions(
  endpoints: CloudEndpoints,
): TokenCredentialOptions & { disableInstanceDiscovery?: boolean } {
  return {
    ...(endpoints.azureAuthorityHost
      ? { authorityHost: endpoints.azureAuthorityHost, disableInstanceDiscovery: true }
      : {}),
    ...(endpoints.tlsCa ? { tlsOptions: { ca: endpoints.tlsCa } } : {}),
  };
}

/** Credential constructors throw on bad arguments (a malformed tenant id, a missing client id). */
function create(what: string, make: () => TokenCredential): TokenCredential {
  try {
    return make();
  } catch (err) {
    throw new CredentialError('RefreshFailed', cleanMessage(`${what}: ${azureMessage(err)}`));
  }
}

interface ExchangeResponse {
  status: number;
  body: string;
}

function exchangeResult(response: ExchangeResponse): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(response.body);
  } catch {
    parsed = undefined;
  }
  const fields =
    typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
  if (response.status === 200) {
    const token = fields.refresh_token;
    if (typeof token === 'string' && token !== '') return token;
    throw new CredentialError(
      'RefreshFailed',
      'acr token exchange: no refresh_token in the response',
    );
  }
  // {"errors":[{"code":"UNAUTHORIZED","message":"..."}]} or an OAuth {"error":..., "error_description":...}.
  const first = Array.isArray(fields.errors)
    ? (fields.errors[0] as Record<string, unknown> | undefined)
    : undefined;
  const code = first?.code ?? fields.error;
  const message = first?.message ?? fields.error_description;
  const detail = [code, message]
    .filter((part): part is string => typeof part === 'string')
    .join(': ');
  throw new CredentialError(
    'RefreshFailed',
    cleanMessage(`acr token exchange: HTTP ${response.status}${detail ? ` ${detail}` : ''}`),
  );
}

/** POST a form; the https module rather than fetch, so that a test CA can be trusted per call. */
function postForm(
  url: string,
  form: URLSearchParams,
  ca: string | undefined,
  signal: AbortSignal | undefined,
): Promise<ExchangeResponse> {
  const target = new URL(url);
  const body = form.toString();
  const request =
    target.protocol === 'https:'
      ? httpsRequest
      : target.protocol === 'http:'
        ? httpRequest
        : undefined;
  if (request === undefined) {
    return Promise.reject(
      new CredentialError('RefreshFailed', 'acr token exchange: the URL is not http(s)'),
    );
  }
  return new Promise((resolve, reject) => {
    const req = request(
      target,
      {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': Buffer.byteLength(body),
          accept: 'application/json',
        },
        timeout: EXCHANGE_TIMEOUT_MS,
        ...(ca ? { ca } : {}),
        ...(signal ? { signal } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) {
            req.destroy(new Error('response too large'));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () =>
      req.destroy(new Error(`no answer within ${EXCHANGE_TIMEOUT_MS / 1000}s`)),
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** An Entra error reduced to its code and description: MSAL's wrapping, timestamps and
 * trace ids dropped. The error's class name is left out: MSAL's are misleading here. */
function azureError(err: unknown): unknown {
  if (err instanceof CredentialError || !(err instanceof Error)) return err;
  return new Error(azureMessage(err));
}

function azureMessage(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  let text = err.message;
  // "invalid_client: Error(s): 7000215 - Timestamp: … - Description: AADSTS7000215: …"
  const described = /^(.*?)Error\(s\):.*? - Description: (.*)$/s.exec(text);
  if (described) text = `${described[1] ?? ''}${described[2] ?? ''}`;
  text = text.replace(/\s*-?\s*(?:Trace ID|Correlation ID|Timestamp):.*$/s, '');
  return text.split(/\r?\n/, 1)[0]?.trim() || err.name;
}
