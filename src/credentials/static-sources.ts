// The two sources that need no cloud call: a username/password Secret (`basic`) and an
// existing pull Secret (`dockerConfig`). Both turn a V1Secret from the cache into auths
// entries; messages name the Secret and key, never a value.
import type { V1Secret } from '@kubernetes/client-node';
import type { BasicSource } from '../api/types.ts';
import {
  basicAuthEntry,
  type DockerAuthEntry,
  decodeBase64Strict,
  encodeBase64,
  parseDockerConfigSecret,
} from './dockerconfigjson.ts';
import { CredentialError, isCredentialError } from './errors.ts';

export const DEFAULT_USERNAME_KEY = 'username';
export const DEFAULT_PASSWORD_KEY = 'password';

// C0 controls and DEL; a username also can't hold ':' (it ends the user in "user:pass").
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;
const LINE_BREAK = /[\r\n]/;

export function resolveBasic(
  source: BasicSource,
  secret: V1Secret,
  server: string,
): Map<string, DockerAuthEntry> {
  const usernameKey = source.usernameKey || DEFAULT_USERNAME_KEY;
  const passwordKey = source.passwordKey || DEFAULT_PASSWORD_KEY;
  const username = readKey(secret, usernameKey);
  const password = readKey(secret, passwordKey);
  const where = secretName(secret);
  if (CONTROL_CHARS.test(username)) {
    throw invalid(`${where} key ${usernameKey} contains a control character`);
  }
  if (username.includes(':')) {
    throw invalid(`${where} key ${usernameKey} contains ':', which a registry username cannot`);
  }
  // A trailing newline from `kubectl create secret --from-file` is the usual culprit; a
  // registry would answer 401 at pull time, far from the cause.
  if (LINE_BREAK.test(password)) {
    throw invalid(`${where} key ${passwordKey} contains a line break`);
  }
  return new Map([[server, basicAuthEntry(username, password)]]);
}

export function resolveDockerConfig(secret: V1Secret): Map<string, DockerAuthEntry> {
  try {
    return parseDockerConfigSecret(secret.type, secretData(secret));
  } catch (err) {
    if (isCredentialError(err)) {
      throw new CredentialError(err.reason, `${secretName(secret)}: ${err.message}`);
    }
    throw err;
  }
}

/** Later parts win on the same server key. */
export function mergeRegistryAuths(
  parts: ReadonlyArray<ReadonlyMap<string, DockerAuthEntry>>,
): Map<string, DockerAuthEntry> {
  const merged = new Map<string, DockerAuthEntry>();
  for (const part of parts) {
    for (const [server, entry] of part) merged.set(server, entry);
  }
  return merged;
}

/** `data` (base64) overlaid with `stringData`, as the API server would store them. */
function secretData(secret: V1Secret): Record<string, string> {
  const data: Record<string, string> = { ...secret.data };
  for (const [key, value] of Object.entries(secret.stringData ?? {})) {
    data[key] = encodeBase64(value);
  }
  return data;
}

function readKey(secret: V1Secret, key: string): string {
  const where = secretName(secret);
  let value: string;
  const plain = Object.hasOwn(secret.stringData ?? {}, key) ? secret.stringData?.[key] : undefined;
  if (plain !== undefined) {
    value = plain;
  } else {
    const encoded = Object.hasOwn(secret.data ?? {}, key) ? secret.data?.[key] : undefined;
    if (encoded === undefined) throw invalid(`${where} has no key ${key}`);
    const bytes = decodeBase64Strict(encoded);
    if (bytes === null) throw invalid(`${where} key ${key} is not valid base64`);
    try {
      value = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
    } catch {
      throw invalid(`${where} key ${key} is not valid UTF-8`);
    }
  }
  if (value === '') throw invalid(`${where} key ${key} is empty`);
  return value;
}

function secretName(secret: V1Secret): string {
  const ns = secret.metadata?.namespace ?? '';
  const name = secret.metadata?.name ?? '';
  return `Secret ${ns}/${name}`;
}

function invalid(message: string): CredentialError {
  return new CredentialError('SourceInvalid', message);
}
