// Google Artifact Registry / Container Registry: an OAuth access token for the cloud-platform
// scope, used as the password of `oauth2accesstoken`. From a service-account key in a Secret,
// or from Application Default Credentials: a credentials file (GOOGLE_APPLICATION_CREDENTIALS,
// e.g. workload identity federation's `external_account`), else the metadata server (GKE
// workload identity, GCE; GCE_METADATA_HOST honoured).
//
// ADC is resolved here rather than by GoogleAuth.getClient(): that also looks up a project id
// (running `gcloud` and asking the metadata server) on every call, and it would load any
// credentials file unvalidated. A file's token URLs must be Google's before it is used.
import { createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  type AuthClient,
  Compute,
  ExternalAccountAuthorizedUserClient,
  type ExternalAccountAuthorizedUserClientOptions,
  ExternalAccountClient,
  type ExternalAccountClientOptions,
  type gaxios,
  JWT,
  UserRefreshClient,
} from 'google-auth-library';
import { secretValues } from '../../observability/redact.ts';
import { CredentialError } from '../errors.ts';
import {
  abortable,
  type CloudEndpoints,
  type CloudToken,
  type CloudTokenInput,
  requireSecretKey,
} from './cloud-token.ts';
import {
  cannotReach,
  explained,
  hostOf,
  networkFailure,
  transient,
  transientSentence,
} from './failure.ts';

export const GCP_SCOPE = 'https://www.googleapis.com/auth/cloud-platform';
export const GCP_USERNAME = 'oauth2accesstoken';
export const DEFAULT_GCP_KEY = 'key.json';
/** Fixed in google-auth-library: where service-account assertions are exchanged. */
export const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';

type TransporterOptions = gaxios.GaxiosOptions;

export async function fetchGcpToken(input: CloudTokenInput): Promise<CloudToken> {
  const gcp = input.registry.gcp;
  if (gcp === undefined || !input.registry.server) {
    throw new CredentialError('InvalidSpec', 'gcp: the registry needs a server and a gcp block');
  }
  const endpoints = input.endpoints ?? {};
  const transporterOptions = transporterFor(endpoints);
  const ref = gcp.serviceAccountKeySecretRef;
  const held: string[] = [];
  let client: AuthClient;
  let what = 'gcp';
  let subject: string;
  let metadataServer = false;
  if (ref) {
    const key = ref.key || DEFAULT_GCP_KEY;
    const raw = requireSecretKey(input, key, 'gcp.serviceAccountKeySecretRef');
    secretValues.add(raw);
    held.push(raw);
    const where =
      input.secretName === undefined ? `key ${key}` : `Secret ${input.secretName} key ${key}`;
    const json = parseJson(
      raw,
      () => new CredentialError('SourceInvalid', `${where} is not valid JSON`),
    );
    client = serviceAccountClient(
      json,
      transporterOptions,
      (message) => new CredentialError('SourceInvalid', joined(where, message)),
      held,
    );
    subject = where;
  } else {
    const adc = await applicationDefaultClient(endpoints, transporterOptions, held);
    client = adc.client;
    what = `gcp (${adc.source})`;
    subject = `Google (${adc.source})`;
    metadataServer = adc.client instanceof Compute;
  }

  try {
    const { token } = await abortable(client.getAccessToken(), input.signal);
    const expiry = client.credentials.expiry_date;
    if (!token)
      throw new CredentialError('RefreshFailed', `${what}: no access token in the response`);
    secretValues.add(token, client.credentials.refresh_token ?? undefined);
    if (typeof expiry !== 'number' || !Number.isFinite(expiry)) {
      throw new CredentialError('RefreshFailed', `${what}: no expiry in the token response`);
    }
    return { username: GCP_USERNAME, password: token, expiresAt: new Date(expiry) };
  } catch (err) {
    if (err instanceof CredentialError) throw err;
    throw explained(
      explainGoogleFailure(err, {
        subject,
        fromKey: ref !== undefined,
        metadataServer,
        tokenHost: hostOf(endpoints.gcpTokenUrl ?? GOOGLE_TOKEN_URL),
      }),
      err,
      ...held,
    );
  }
}

/** `<where> <message>`, or `<where>: <rest>` for a message that starts with a colon. */
function joined(where: string, message: string): string {
  return message.startsWith(':') ? `${where}${message}` : `${where} ${message}`;
}

export interface GoogleFailureContext {
  /** "Google (key in Secret ns/name key key.json)", "Google (metadata server)", … */
  subject: string;
  /** The credential is a service-account key (from a Secret or an ADC file). */
  fromKey: boolean;
  metadataServer: boolean;
  /** Where Google's token URL requests really go (REGCRED_GCP_TOKEN_URL moves them). */
  tokenHost: string;
}

/** One sentence for a failed Google token fetch: what is wrong, and what to do. */
export function explainGoogleFailure(err: unknown, c: GoogleFailureContext): string {
  const e = (typeof err === 'object' && err !== null ? err : {}) as {
    status?: unknown;
    response?: { status?: unknown };
    config?: { url?: unknown };
  };
  const url = e.config?.url;
  let requested = url === undefined ? undefined : hostOf(String(url));
  if (requested === hostOf(GOOGLE_TOKEN_URL)) requested = c.tokenHost;
  const net = networkFailure(err);
  if (net) {
    if (c.metadataServer) {
      const host = requested ?? process.env.GCE_METADATA_HOST ?? '169.254.169.254';
      return `${c.subject}: ${cannotReach(net, host)}; not on GKE or Compute Engine? set gcp.serviceAccountKeySecretRef`;
    }
    return `${c.subject}: ${cannotReach(net, requested ?? c.tokenHost)}`;
  }
  const status =
    typeof e.status === 'number'
      ? e.status
      : typeof e.response?.status === 'number'
        ? e.response.status
        : undefined;
  const { code, description } = googleError(err);
  if (status === undefined && !code) {
    const message = err instanceof Error ? err.message.split(/\r?\n/, 1)[0] : String(err);
    return `${c.subject}: the Google token request failed: ${message}`;
  }
  if (transient(status, code)) return transientSentence(`${c.subject}: Google`, status, code);
  // (HTTP 400 invalid_grant: Invalid JWT Signature.)
  const head = [status === undefined ? '' : `HTTP ${status}`, code ?? ''].join(' ').trim();
  const said = ` (${head}${description ? `: ${description}` : ''})`;
  if (code === 'invalid_grant' && c.fromKey) {
    const hint = /Invalid JWT Signature/i.test(description ?? '')
      ? ': it was deleted or disabled; create a new key for the service account'
      : /account not found/i.test(description ?? '')
        ? ': its service account no longer exists'
        : '';
    return `${c.subject}: Google refused the service-account key${said}${hint}`;
  }
  if (status === 401 || status === 403)
    return `${c.subject}: Google denied the token request${said}`;
  return `${c.subject}: Google refused the token request${said}`;
}

/** Requests to Google's fixed token URL go to `gcpTokenUrl` instead (tests). */
function transporterFor(endpoints: CloudEndpoints): TransporterOptions {
  const target = endpoints.gcpTokenUrl;
  if (target === undefined) return {};
  const redirecting: typeof fetch = (resource, init) => {
    const url = resource instanceof Request ? resource.url : String(resource);
    return fetch(url === GOOGLE_TOKEN_URL ? target : resource, init);
  };
  return { fetchImplementation: redirecting };
}

function parseJson(raw: string, invalid: () => CredentialError): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    // The SyntaxError quotes the key material.
    throw invalid();
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid();
  return value as Record<string, unknown>;
}

function stringField(json: Record<string, unknown>, field: string): string | undefined {
  const value = json[field];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function serviceAccountClient(
  json: Record<string, unknown>,
  transporterOptions: TransporterOptions,
  invalid: (message: string) => CredentialError,
  held: string[],
): JWT {
  if (json.type !== 'service_account') {
    // Only keys: an external_account config would make the operator read files and call
    // URLs named by whoever can write the Secret.
    throw invalid('is not a service account key (type must be "service_account")');
  }
  const email = stringField(json, 'client_email');
  const key = stringField(json, 'private_key');
  if (email === undefined) throw invalid('has no client_email');
  if (key === undefined) throw invalid('has no private_key');
  secretValues.add(key);
  held.push(key);
  try {
    createPrivateKey(key);
  } catch {
    // OpenSSL's "DECODER routines::unsupported" when it is signed with, much later.
    throw invalid(': private_key is not a PEM private key');
  }
  const keyId = stringField(json, 'private_key_id');
  return new JWT({
    email,
    key,
    ...(keyId === undefined ? {} : { keyId }),
    scopes: [GCP_SCOPE],
    transporterOptions,
  });
}

/** The ADC credentials file, if any: GOOGLE_APPLICATION_CREDENTIALS, else gcloud's. */
async function adcFile(): Promise<{ path: string; source: string; text: string } | undefined> {
  const fromEnv = process.env.GOOGLE_APPLICATION_CREDENTIALS;
  if (fromEnv) {
    try {
      return {
        path: fromEnv,
        source: 'GOOGLE_APPLICATION_CREDENTIALS',
        text: await readFile(fromEnv, 'utf8'),
      };
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      throw new CredentialError(
        'RefreshFailed',
        `gcp: cannot read the GOOGLE_APPLICATION_CREDENTIALS file: ${typeof code === 'string' ? code : 'error'}`,
      );
    }
  }
  const dir =
    process.env.CLOUDSDK_CONFIG || join(process.env.HOME || homedir(), '.config', 'gcloud');
  const path = join(dir, 'application_default_credentials.json');
  try {
    return {
      path,
      source: 'gcloud application default credentials',
      text: await readFile(path, 'utf8'),
    };
  } catch {
    return undefined;
  }
}

async function applicationDefaultClient(
  endpoints: CloudEndpoints,
  transporterOptions: TransporterOptions,
  held: string[],
): Promise<{ client: AuthClient; source: string }> {
  const file = await adcFile();
  if (file === undefined) {
    return {
      client: new Compute({ scopes: [GCP_SCOPE], transporterOptions }),
      source: 'metadata server',
    };
  }
  secretValues.add(file.text);
  held.push(file.text);
  const invalid = (message: string): CredentialError =>
    new CredentialError('RefreshFailed', joined(`gcp: the ${file.source} file`, message));
  const json = parseJson(file.text, () => invalid('is not valid JSON'));
  const allowLoopback = endpoints.gcpAllowLoopbackUrls === true;
  switch (json.type) {
    case 'service_account':
      return {
        client: serviceAccountClient(json, transporterOptions, invalid, held),
        source: file.source,
      };
    case 'external_account': {
      validateGoogleUrls(
        json,
        ['token_url', 'service_account_impersonation_url', 'token_info_url'],
        allowLoopback,
        invalid,
      );
      const client = ExternalAccountClient.fromJSON({
        ...(json as unknown as ExternalAccountClientOptions),
        scopes: [GCP_SCOPE],
        transporterOptions,
      });
      if (client === null) throw invalid('is not a supported external_account configuration');
      return { client, source: `${file.source}, external_account` };
    }
    case 'external_account_authorized_user': {
      validateGoogleUrls(
        json,
        ['token_url', 'token_info_url', 'revoke_url'],
        allowLoopback,
        invalid,
      );
      for (const field of ['client_secret', 'refresh_token']) {
        const value = stringField(json, field);
        if (value !== undefined) {
          secretValues.add(value);
          held.push(value);
        }
      }
      const client = new ExternalAccountAuthorizedUserClient({
        ...(json as unknown as ExternalAccountAuthorizedUserClientOptions),
        transporterOptions,
      });
      return { client, source: `${file.source}, external_account_authorized_user` };
    }
    case 'authorized_user': {
      for (const field of ['client_secret', 'refresh_token']) {
        const value = stringField(json, field);
        if (value !== undefined) {
          secretValues.add(value);
          held.push(value);
        }
      }
      const client = new UserRefreshClient({ transporterOptions });
      client.fromJSON(json);
      return { client, source: `${file.source}, authorized_user` };
    }
    default:
      throw invalid(
        'has an unsupported type (supported: service_account, external_account, external_account_authorized_user, authorized_user)',
      );
  }
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

/**
 * Each URL field present must be https on googleapis.com (sts.googleapis.com,
 * iamcredentials.googleapis.com, regional *.googleapis.com) on the default port: a credentials
 * file that sends the subject token elsewhere is refused before anything is read or sent.
 */
export function validateGoogleUrls(
  json: Record<string, unknown>,
  fields: readonly string[],
  allowLoopback: boolean,
  invalid: (message: string) => CredentialError,
): void {
  for (const field of fields) {
    const value = json[field];
    if (value === undefined) continue;
    if (typeof value !== 'string' || !isGoogleApisUrl(value, allowLoopback)) {
      throw invalid(`has a ${field} that is not an https://*.googleapis.com URL`);
    }
  }
}

export function isGoogleApisUrl(value: string, allowLoopback = false): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  if (url.username !== '' || url.password !== '') return false;
  const host = url.hostname.toLowerCase();
  if (allowLoopback && LOOPBACK_HOSTS.has(host))
    return url.protocol === 'https:' || url.protocol === 'http:';
  if (url.protocol !== 'https:' || url.port !== '') return false;
  return (
    host === 'googleapis.com' ||
    (host.endsWith('.googleapis.com') && /^[a-z0-9.-]+$/.test(host) && !host.includes('..'))
  );
}

/** The OAuth error and description of a Google error response, when there is one. */
function googleError(err: unknown): { code?: string; description?: string } {
  if (!(err instanceof Error)) return {};
  const data = (err as { response?: { data?: unknown } }).response?.data;
  if (typeof data === 'object' && data !== null) {
    const { error, error_description: description } = data as Record<string, unknown>;
    if (typeof error === 'string') {
      return {
        code: error,
        ...(typeof description === 'string' && description !== '' ? { description } : {}),
      };
    }
    if (typeof error === 'object' && error !== null) {
      const { status, message } = error as Record<string, unknown>;
      return {
        ...(typeof status === 'string' ? { code: status } : {}),
        ...(typeof message === 'string' ? { description: message } : {}),
      };
    }
  }
  return {};
}
