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
  registryHost,
  requireSecretKey,
} from './cloud-token.ts';
import {
  cannotReach,
  explained,
  hostOf,
  type NetworkFailure,
  networkFailure,
  transient,
  transientSentence,
} from './failure.ts';

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
  const observed: Observed = {};
  const options = credentialOptions(endpoints, observed);
  let credential: TokenCredential;
  let what: string;
  let tenantId = acr.tenantId || undefined;
  let secretKey: string | undefined;

  if (acr.clientSecretRef) {
    if (!acr.tenantId || !acr.clientId) {
      throw new CredentialError(
        'InvalidSpec',
        'acr: tenantId and clientId are required with clientSecretRef',
      );
    }
    const key = acr.clientSecretRef.key || DEFAULT_ACR_SECRET_KEY;
    secretKey =
      input.secretName === undefined
        ? `key ${key} of the Secret`
        : `Secret ${input.secretName} key ${key}`;
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
    if (err instanceof CredentialError) throw err;
    const mode = acr.clientSecretRef
      ? 'client secret'
      : process.env.AZURE_FEDERATED_TOKEN_FILE
        ? 'workload identity'
        : 'managed identity';
    const clientId =
      acr.clientId ||
      (mode === 'workload identity' ? process.env.AZURE_CLIENT_ID || undefined : undefined);
    throw explained(
      explainEntraFailure(err, {
        mode,
        ...(tenantId ? { tenantId } : {}),
        ...(clientId ? { clientId } : {}),
        ...(secretKey ? { secretKey } : {}),
        authorityHost: hostOf(
          endpoints.azureAuthorityHost ||
            process.env.AZURE_AUTHORITY_HOST ||
            'https://login.microsoftonline.com',
        ),
        observed,
      }),
      err,
      ...held,
    );
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
  const exchange = {
    host,
    who: `client ${acr.clientId || jwtClaim(aadToken, 'appid') || 'of the managed identity'}${tenantId ? ` in tenant ${tenantId}` : ''}`,
  };
  try {
    const response = await abortable(
      postForm(url, form, endpoints.tlsCa, input.signal),
      input.signal,
    );
    refreshToken = exchangeResult(response, exchange);
  } catch (err) {
    if (err instanceof CredentialError) throw err;
    const net = networkFailure(err);
    const message = err instanceof Error ? err.message.split(/\r?\n/, 1)[0] : String(err);
    throw explained(
      net
        ? `ACR ${host}: ${cannotReach(net, hostOf(url))}`
        : `ACR ${host}: the token exchange failed: ${message}`,
      err,
      ...held,
    );
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

type PipelinePolicy = NonNullable<TokenCredentialOptions['additionalPolicies']>[number]['policy'];

/** What the Entra ID requests of one fetch got last: an HTTP status, or no answer at all. */
interface Observed {
  host?: string;
  status?: number;
  network?: NetworkFailure;
}

/** Records each request's outcome: MSAL's errors carry neither the HTTP status nor the cause. */
function observer(observed: Observed): PipelinePolicy {
  return {
    name: 'regcred-observe-entra',
    async sendRequest(request, next) {
      observed.host = hostOf(request.url);
      try {
        const response = await next(request);
        observed.status = response.status;
        delete observed.network;
        return response;
      } catch (err) {
        const network = networkFailure(err);
        delete observed.status;
        if (network) observed.network = network;
        throw err;
      }
    },
  };
}

function credentialOptions(
  endpoints: CloudEndpoints,
  observed: Observed,
): TokenCredentialOptions & { disableInstanceDiscovery?: boolean } {
  return {
    ...(endpoints.azureAuthorityHost
      ? { authorityHost: endpoints.azureAuthorityHost, disableInstanceDiscovery: true }
      : {}),
    ...(endpoints.tlsCa ? { tlsOptions: { ca: endpoints.tlsCa } } : {}),
    additionalPolicies: [{ policy: observer(observed), position: 'perRetry' }],
  };
}

export interface EntraFailureContext {
  mode: 'client secret' | 'workload identity' | 'managed identity';
  tenantId?: string;
  clientId?: string;
  /** "Secret ns/name key clientSecret" with a client secret. */
  secretKey?: string;
  /** The authority's host, for a failure that names none. */
  authorityHost: string;
  observed: Observed;
}

/** What an AADSTS code means for whoever set this credential up. */
const AADSTS: Record<string, (c: EntraFailureContext) => string> = {
  '7000215': (c) =>
    `the client secret in ${c.secretKey ?? 'the Secret'} is not a secret of this app`,
  '7000222': (c) =>
    `the client secret in ${c.secretKey ?? 'the Secret'} has expired: add a new one to the app registration and put it in the Secret`,
  '700016': () => 'there is no app with this client id in the tenant',
  '90002': () => 'the tenant does not exist',
  '900023': () => 'the tenant id is not a tenant',
  '700024': () =>
    'the ServiceAccount token is expired or not yet valid: check that the projected token file (AZURE_FEDERATED_TOKEN_FILE) is refreshed',
  '70021': () =>
    "no federated credential of the app matches the ServiceAccount token (issuer, subject, audience): add one for the operator's ServiceAccount",
  '700211': () =>
    "no federated credential of the app names the ServiceAccount token's issuer: add one for this cluster's OIDC issuer",
  '700213': () =>
    "no federated credential of the app matches the ServiceAccount token's subject: add one for the operator's ServiceAccount",
};

/** One sentence for a failed Entra ID token request: tenant, client, HTTP status, what to do. */
export function explainEntraFailure(err: unknown, c: EntraFailureContext): string {
  const who =
    c.mode === 'managed identity'
      ? `Entra ID (managed identity${c.clientId ? `, client ${c.clientId}` : ''})`
      : `Entra ID tenant ${c.tenantId ?? '(unset: AZURE_TENANT_ID)'}, client ${c.clientId ?? '(unset: AZURE_CLIENT_ID)'}`;
  const net = c.observed.network ?? networkFailure(err);
  if (net) {
    const reach = cannotReach(net, c.observed.host ?? c.authorityHost);
    return c.mode === 'managed identity'
      ? `${who}: ${reach}; not on Azure? set acr.clientSecretRef`
      : `${who}: ${reach}`;
  }
  const text = azureMessage(err);
  const code = /^([a-z_]+):/.exec(text)?.[1];
  const aadsts = /AADSTS(\d+)/.exec(text)?.[1];
  const status = c.observed.status;
  const tag = ` (${[
    status === undefined ? '' : `HTTP ${status}`,
    code ?? '',
    aadsts ? `AADSTS${aadsts}` : '',
  ]
    .filter((p) => p !== '')
    .join(' ')})`.replace(' ()', '');
  if (transient(status, code)) return transientSentence(`${who}: Entra ID`, status, code);
  const meaning = aadsts === undefined ? undefined : AADSTS[aadsts];
  if (meaning) return `${who}: ${meaning(c)}${tag}`;
  const description = text.replace(/^[a-z_]+:\s*/, '').replace(/^AADSTS\d+:\s*/, '');
  return `${who}: Entra ID refused the token request${tag}${description ? `: ${description}` : ''}`;
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

function exchangeResult(
  response: ExchangeResponse,
  exchange: { host: string; who: string },
): string {
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
      `ACR ${exchange.host}: the token exchange answered without a refresh_token`,
    );
  }
  // {"errors":[{"code":"UNAUTHORIZED","message":"..."}]} or an OAuth {"error":..., "error_description":...}.
  const first = Array.isArray(fields.errors)
    ? (fields.errors[0] as Record<string, unknown> | undefined)
    : undefined;
  const code = first?.code ?? fields.error;
  const message = first?.message ?? fields.error_description;
  const said = [`HTTP ${response.status}`, typeof code === 'string' ? code : undefined]
    .filter((part) => part !== undefined)
    .join(' ');
  const detail = typeof message === 'string' && message !== '' ? `: ${message}` : '';
  const status = response.status;
  const sentence = transient(status, typeof code === 'string' ? code : undefined)
    ? transientSentence(`ACR ${exchange.host}: the registry's token exchange`, status, undefined)
    : status === 401 || status === 403
      ? `ACR ${exchange.host}: the registry refused the Entra ID token of ${exchange.who} (${said})${detail}: give that identity the AcrPull role on the registry`
      : `ACR ${exchange.host}: the token exchange refused the Entra ID token of ${exchange.who} (${said})${detail}`;
  throw new CredentialError('RefreshFailed', cleanMessage(sentence));
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

function azureMessage(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  let text = err.message;
  // "invalid_client: Error(s): 7000215 - Timestamp: … - Description: AADSTS7000215: …"
  const described = /^(.*?)Error\(s\):.*? - Description: (.*)$/s.exec(text);
  if (described) text = `${described[1] ?? ''}${described[2] ?? ''}`;
  text = text.replace(/\s*-?\s*(?:Trace ID|Correlation ID|Timestamp):.*$/s, '');
  return text.split(/\r?\n/, 1)[0]?.trim() || err.name;
}
