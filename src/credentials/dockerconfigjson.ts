// Reading and writing the kubelet's image pull config (`.dockerconfigjson` / `.dockercfg`).
// Parsing is strict where the kubelet is (a config it cannot read is reported, not copied),
// and error messages never quote anything read from the Secret: not a value, not a server.
import { secretValues } from '../observability/redact.ts';
import { CredentialError } from './errors.ts';

export const DOCKER_CONFIG_JSON_TYPE = 'kubernetes.io/dockerconfigjson';
export const DOCKER_CONFIG_JSON_KEY = '.dockerconfigjson';
export const DOCKERCFG_TYPE = 'kubernetes.io/dockercfg';
export const DOCKERCFG_KEY = '.dockercfg';

/** More entries than this in one imported config is refused as SourceInvalid. */
export const MAX_DOCKER_CONFIG_ENTRIES = 1000;

/**
 * The API server refuses a Secret whose data adds up to more than 1 MiB: a config that big can
 * never be written, so it is a SourceInvalid, not a write failure to retry in every namespace.
 */
export const MAX_SECRET_DATA_BYTES = 1024 * 1024;

export interface DockerAuthEntry {
  username?: string;
  password?: string;
  auth?: string;
  email?: string;
  identitytoken?: string;
  registrytoken?: string;
}

/** The order fields are written in, so that identical input gives identical bytes. */
const ENTRY_FIELDS = [
  'username',
  'password',
  'auth',
  'email',
  'identitytoken',
  'registrytoken',
] as const satisfies readonly (keyof DockerAuthEntry)[];

const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Decodes standard, padded base64 as Go's base64.StdEncoding does; null when malformed
 * (Buffer.from alone silently skips bad characters). */
export function decodeBase64Strict(value: string): Buffer | null {
  return STRICT_BASE64.test(value) ? Buffer.from(value, 'base64') : null;
}

export function encodeBase64(value: string): string {
  return Buffer.from(value, 'utf8').toString('base64');
}

export function basicAuthEntry(username: string, password: string): DockerAuthEntry {
  const entry = { username, password, auth: encodeBase64(`${username}:${password}`) };
  registerAuthEntry(entry);
  return entry;
}

/**
 * Registers every form an entry's secrets take for redaction: the password, `user:password`
 * and its base64 (the `auth` field, as given and as written), and the tokens.
 */
export function registerAuthEntry(entry: DockerAuthEntry): void {
  secretValues.addLogin(entry.username, entry.password);
  secretValues.add(entry.auth, entry.identitytoken, entry.registrytoken);
}

/** `{"auths":{...}}` with servers in code-unit order and each entry's fields in a fixed order;
 * empty and absent fields are left out (Go's omitempty). */
export function buildDockerConfigJson(entries: ReadonlyMap<string, DockerAuthEntry>): string {
  const servers = [...entries.keys()].sort(compareCodeUnits);
  const auths = servers.map((server) => {
    const entry = entries.get(server) ?? {};
    const fields: string[] = [];
    for (const field of ENTRY_FIELDS) {
      const value = entry[field];
      if (value !== undefined && value !== '') {
        fields.push(`${JSON.stringify(field)}:${JSON.stringify(value)}`);
      }
    }
    return `${JSON.stringify(server)}:{${fields.join(',')}}`;
  });
  const json = `{"auths":{${auths.join(',')}}}`;
  // An API error that echoes the Secret quotes the whole config, or its base64 as in `data`.
  if (entries.size > 0) secretValues.add(json);
  const bytes = Buffer.byteLength(json, 'utf8');
  if (bytes > MAX_SECRET_DATA_BYTES) {
    throw invalid(
      `the merged ${DOCKER_CONFIG_JSON_KEY} would be ${bytes} bytes, more than the ${MAX_SECRET_DATA_BYTES} a Secret can hold`,
    );
  }
  return json;
}

/**
 * Reads the auths of a dockerconfigjson (or legacy dockercfg) Secret from its base64 `data`.
 * As in the kubelet and the docker CLI, a non-empty `auth` wins over `username`/`password`:
 * the entry's username and password are the ones decoded from it (padded or unpadded, as the
 * kubelet decodes it), and `auth` is written back padded. An entry with a username
 * and password but no `auth` gets one, so every basic entry has the same shape. Unknown
 * fields are dropped.
 */
export function parseDockerConfigSecret(
  type: string | undefined,
  data: Record<string, string> | undefined,
): Map<string, DockerAuthEntry> {
  let key: string;
  if (type === DOCKER_CONFIG_JSON_TYPE) {
    key = DOCKER_CONFIG_JSON_KEY;
  } else if (type === DOCKERCFG_TYPE) {
    key = DOCKERCFG_KEY;
  } else {
    // The type is metadata anyone who can list Secrets sees, not credential material.
    throw invalid(
      `type ${describeType(type)} is neither ${DOCKER_CONFIG_JSON_TYPE} nor ${DOCKERCFG_TYPE}`,
    );
  }

  const encoded = data?.[key];
  if (encoded === undefined) throw invalid(`key ${key} is missing`);
  const bytes = decodeBase64Strict(encoded);
  if (bytes === null) throw invalid(`key ${key} is not valid base64`);

  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    // The SyntaxError quotes the input: drop it.
    throw invalid(`key ${key} is not valid JSON`);
  }

  let auths: unknown;
  if (key === DOCKER_CONFIG_JSON_KEY) {
    if (!isPlainObject(parsed)) throw invalid(`key ${key} is not a JSON object`);
    if (!Object.hasOwn(parsed, 'auths')) throw invalid(`key ${key} has no "auths" object`);
    auths = parsed.auths;
    if (!isPlainObject(auths)) throw invalid(`"auths" in key ${key} is not a JSON object`);
  } else {
    auths = parsed;
    if (!isPlainObject(auths)) throw invalid(`key ${key} is not a JSON object`);
  }

  const servers = Object.keys(auths);
  if (servers.length > MAX_DOCKER_CONFIG_ENTRIES) {
    throw invalid(
      `key ${key} has ${servers.length} registry entries, more than the limit of ${MAX_DOCKER_CONFIG_ENTRIES}`,
    );
  }

  const result = new Map<string, DockerAuthEntry>();
  servers.forEach((server, index) => {
    // Entries are named by position: a server name is content of the Secret too.
    result.set(server, parseEntry(auths[server], `registry entry #${index + 1} in key ${key}`));
  });
  return result;
}

function parseEntry(raw: unknown, where: string): DockerAuthEntry {
  if (!isPlainObject(raw)) throw invalid(`${where} is not a JSON object`);
  const entry: DockerAuthEntry = {};
  for (const field of ENTRY_FIELDS) {
    const value = raw[field];
    // Go's json.Unmarshal leaves a string field empty for null, and fails for other types.
    if (value === undefined || value === null || value === '') continue;
    if (typeof value !== 'string') throw invalid(`${where}: field "${field}" is not a string`);
    entry[field] = value;
  }

  // Registered before anything can fail: an error about this entry must not carry them.
  registerAuthEntry(entry);
  if (entry.auth !== undefined) {
    const decoded = decodeAuthField(entry.auth);
    if (decoded === null) {
      throw invalid(`${where}: field "auth" is not base64 of "username:password"`);
    }
    const { username, password } = decoded;
    // Re-encoded in the one form every client reads (the kubelet also takes it unpadded, the
    // docker CLI and containerd's tooling may not); the kubelet uses only the decoded pair.
    const auth = encodeBase64(`${username}:${password}`);
    secretValues.addLogin(username, password);
    return withoutEmpty({ ...entry, username, password, auth });
  }
  if (entry.username !== undefined && entry.password !== undefined) {
    return { ...entry, auth: encodeBase64(`${entry.username}:${entry.password}`) };
  }
  return entry;
}

const GO_LINE_BREAKS = /[\r\n]/g;
const UNPADDED_BASE64 = /^[A-Za-z0-9+/]*$/;

/**
 * Decodes `auth` exactly as the kubelet's decodeDockerConfigFieldAuth does: padded base64
 * (StdEncoding) when the trimmed value ends in '=', unpadded (RawStdEncoding) otherwise. Go's
 * decoders skip '\r' and '\n' anywhere and reject everything else that is not base64.
 */
export function decodeKubeletAuthBase64(auth: string): Buffer | null {
  const padded = auth.trim().endsWith('=');
  const text = auth.replace(GO_LINE_BREAKS, '');
  if (padded) return decodeBase64Strict(text);
  // Four unpadded characters carry three bytes; one left over is half a byte.
  if (!UNPADDED_BASE64.test(text) || text.length % 4 === 1) return null;
  return Buffer.from(text, 'base64');
}

/** Splits a decoded `auth` at its first ':' as the kubelet does; null when it can't. */
export function decodeAuthField(auth: string): { username: string; password: string } | null {
  const bytes = decodeKubeletAuthBase64(auth);
  if (bytes === null) return null;
  const text = bytes.toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) return null;
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

function withoutEmpty(entry: DockerAuthEntry): DockerAuthEntry {
  const out: DockerAuthEntry = {};
  for (const field of ENTRY_FIELDS) {
    const value = entry[field];
    if (value !== undefined && value !== '') out[field] = value;
  }
  return out;
}

function invalid(message: string): CredentialError {
  return new CredentialError('SourceInvalid', message);
}

function describeType(type: string | undefined): string {
  if (type === undefined || type === '') return 'Opaque';
  const printable = /^[\x21-\x7e]{1,253}$/.test(type);
  return printable ? type : '(unprintable)';
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
