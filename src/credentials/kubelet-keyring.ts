// The kubelet's image pull credential matching, as kubernetes v1.37.2 decides it (built with Go
// 1.26): pkg/util/parsers.ParseImageName (distribution/reference's normalisation) names the
// repository, pkg/credentialprovider/secrets.MakeDockerKeyring reads the Pod's pull Secrets,
// and BasicDockerKeyring.Add/Lookup order the candidates. The one implementation of these rules
// in src/: the operator's registry collision check, `kubectl regcred explain` and the Pod
// webhook all use it; test/unit/kubelet-keyring-differential.test.ts holds it to the kubelet's
// own code.
//
// Go compares and slices strings as bytes, so keys and hosts are handled here as "byte
// strings" (one char per UTF-8 byte) and turned back into text only when returned.
import { isIPv6 } from 'node:net';
import {
  DOCKER_CONFIG_JSON_KEY,
  DOCKER_CONFIG_JSON_TYPE,
  DOCKERCFG_KEY,
  DOCKERCFG_TYPE,
  decodeAuthField,
} from './dockerconfigjson.ts';

// ---------------------------------------------------------------------------------------------
// Image references (distribution/reference ParseNormalizedNamed, as ParseImageName uses it)

export interface ImageReference {
  /** What the kubelet looks credentials up for: `docker.io/library/nginx`, `r.example.com:5000/a`. */
  repository: string;
  domain: string;
  path: string;
  /** `latest` when neither a tag nor a digest is given (ParseImageName's default). */
  tag: string;
  digest: string;
}

export class ImageReferenceError extends Error {
  constructor(image: string, why: string) {
    super(`cannot parse image reference ${JSON.stringify(image)}: ${why}`);
    this.name = 'ImageReferenceError';
  }
}

const ALNUM = '[a-z0-9]+';
const SEPARATOR = '(?:[._]|__|[-]+)';
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN_AND_PORT = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[(?:[a-fA-F0-9:]+)\\])(?::[0-9]+)?`;
const PATH_COMPONENT = `${ALNUM}(?:${SEPARATOR}${ALNUM})*`;
const REMOTE_NAME = `${PATH_COMPONENT}(?:/${PATH_COMPONENT})*`;
const NAME = `(?:${DOMAIN_AND_PORT}/)?${REMOTE_NAME}`;
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9A-Fa-f]{32,}';
const REFERENCE = new RegExp(`^(${NAME})(?::(${TAG}))?(?:@(${DIGEST}))?$`);
const ANCHORED_NAME = new RegExp(`^(?:(${DOMAIN_AND_PORT})/)?(${REMOTE_NAME})$`);
const IDENTIFIER = /^[a-f0-9]{64}$/;
const DIGEST_HEX_LENGTH: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };
const MAX_PATH_LENGTH = 255;

/** The repository, tag and digest the kubelet reads from an image; throws ImageReferenceError. */
export function parseImageReference(image: string): ImageReference {
  if (IDENTIFIER.test(image)) {
    throw new ImageReferenceError(image, 'a 64-character hexadecimal string is not a name');
  }
  const [domain, remainder] = splitDockerDomain(image);
  const tagAt = remainder.indexOf(':');
  const remote = tagAt < 0 ? remainder : remainder.slice(0, tagAt);
  if (remote.toLowerCase() !== remote) {
    throw new ImageReferenceError(image, 'the repository name must be lowercase');
  }
  const full = `${domain}/${remainder}`;
  const match = REFERENCE.exec(full);
  if (!match) throw new ImageReferenceError(image, 'invalid reference format');
  const name = match[1] ?? '';
  const names = ANCHORED_NAME.exec(name);
  const refDomain = names?.[1] ?? '';
  const path = names ? (names[2] ?? '') : name;
  if (path.length > MAX_PATH_LENGTH) {
    throw new ImageReferenceError(
      image,
      `the repository name is over ${MAX_PATH_LENGTH} characters`,
    );
  }
  const digest = match[3] ?? '';
  if (digest !== '') validateDigest(image, digest);
  const tag = match[2] ?? '';
  return {
    repository: refDomain === '' ? path : `${refDomain}/${path}`,
    domain: refDomain,
    path,
    tag: tag === '' && digest === '' ? 'latest' : tag,
    digest,
  };
}

function splitDockerDomain(name: string): [string, string] {
  const slash = name.indexOf('/');
  if (slash < 0) return ['docker.io', `library/${name}`];
  const maybeDomain = name.slice(0, slash);
  const maybeRemote = name.slice(slash + 1);
  let domain: string;
  let remote: string;
  if (maybeDomain === 'localhost') [domain, remote] = [maybeDomain, maybeRemote];
  else if (maybeDomain === 'index.docker.io') [domain, remote] = ['docker.io', maybeRemote];
  else if (/[.:]/.test(maybeDomain)) [domain, remote] = [maybeDomain, maybeRemote];
  else if (maybeDomain.toLowerCase() !== maybeDomain) [domain, remote] = [maybeDomain, maybeRemote];
  else [domain, remote] = ['docker.io', name];
  if (domain === 'docker.io' && !remote.includes('/')) remote = `library/${remote}`;
  return [domain, remote];
}

function validateDigest(image: string, digest: string): void {
  const colon = digest.indexOf(':');
  const algorithm = digest.slice(0, colon);
  const encoded = digest.slice(colon + 1);
  const length = DIGEST_HEX_LENGTH[algorithm];
  if (length === undefined) {
    throw new ImageReferenceError(image, `unsupported digest algorithm ${algorithm}`);
  }
  if (encoded.length !== length || !/^[a-f0-9]+$/.test(encoded)) {
    throw new ImageReferenceError(image, 'invalid digest');
  }
}

function asciiLower(text: string): string {
  return text.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

// ---------------------------------------------------------------------------------------------
// Go's net/url.Parse, for the "http(s)://…" strings the keyring parses

interface GoUrl {
  /** Byte strings, unescaped as Go's URL.Host and URL.Path are. */
  host: string;
  path: string;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: Go's url.Parse refuses these
const CONTROL_BYTES = /[\u0000-\u001f\u007f]/;
/** ASCII bytes Go lets stand unescaped in a host (its encodeHost table). */
const HOST_BYTES = /^[!"$&'()*+,\-.0-9:;<=>A-Z[\]_a-z~]$/;
const HEX = /^[0-9A-Fa-f]$/;

function toBytes(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

function fromBytes(bytes: string): string {
  return Buffer.from(bytes, 'latin1').toString('utf8');
}

/** url.Parse of a byte string starting with a scheme; undefined where Go returns an error. */
function parseGoUrl(raw: string): GoUrl | undefined {
  const hash = raw.indexOf('#');
  const beforeFragment = hash < 0 ? raw : raw.slice(0, hash);
  if (CONTROL_BYTES.test(beforeFragment)) return undefined;
  const colon = beforeFragment.indexOf(':');
  let rest = beforeFragment.slice(colon + 1);
  const questions = rest.split('?').length - 1;
  if (rest.endsWith('?') && questions === 1) rest = rest.slice(0, -1);
  else if (questions > 0) rest = rest.slice(0, rest.indexOf('?'));
  if (!rest.startsWith('//')) return undefined; // never reached: the keyring always adds "//"
  let authority = rest.slice(2);
  let path = '';
  const slash = authority.indexOf('/');
  if (slash >= 0) [authority, path] = [authority.slice(0, slash), authority.slice(slash)];
  const at = authority.lastIndexOf('@');
  const host = parseGoHost(authority.slice(at + 1));
  if (host === undefined) return undefined;
  if (at >= 0 && !validUserinfo(authority.slice(0, at))) return undefined;
  const unescapedPath = unescapeGo(path, 'path');
  if (unescapedPath === undefined) return undefined;
  if (hash >= 0 && unescapeGo(raw.slice(hash + 1), 'path') === undefined) return undefined;
  return { host, path: unescapedPath };
}

function parseGoHost(host: string): string | undefined {
  const open = host.lastIndexOf('[');
  if (open > 0) return undefined;
  if (open === 0) {
    const close = host.lastIndexOf(']');
    if (close < 0) return undefined;
    const colonPort = host.slice(close + 1);
    if (!validOptionalPort(colonPort)) return undefined;
    const hostname = host.slice(1, close);
    const zoneAt = hostname.indexOf('%25');
    let address: string | undefined;
    if (zoneAt >= 0) {
      const hostPart = unescapeGo(hostname.slice(0, zoneAt), 'host');
      const zonePart = unescapeGo(hostname.slice(zoneAt), 'zone');
      address = hostPart === undefined || zonePart === undefined ? undefined : hostPart + zonePart;
    } else {
      address = unescapeGo(hostname, 'host');
    }
    if (address === undefined || !isGoIPv6(address)) return undefined;
    return `[${address}]${colonPort}`;
  }
  const colon = host.indexOf(':');
  if (colon >= 0 && !validOptionalPort(host.slice(colon))) return undefined;
  return unescapeGo(host, 'host');
}

/** netip.ParseAddr accepting an IPv6 address (zone included), and not a plain IPv4 one. */
function isGoIPv6(address: string): boolean {
  const percent = address.indexOf('%');
  const ip = percent < 0 ? address : address.slice(0, percent);
  if (percent >= 0 && percent === address.length - 1) return false;
  // netip refuses an embedded IPv4 part with leading zeros, which node:net accepts.
  const tail = ip.slice(ip.lastIndexOf(':') + 1);
  const leadingZero = tail.includes('.') && tail.split('.').some((o) => /^0[0-9]/.test(o));
  return isIPv6(ip) && !leadingZero;
}

function validOptionalPort(port: string): boolean {
  return port === '' || /^:[0-9]*$/.test(port);
}

function validUserinfo(userinfo: string): boolean {
  if (!/^[A-Za-z0-9\-._:~!$&'()*+,;=%@]*$/.test(userinfo)) return false;
  const colon = userinfo.indexOf(':');
  const parts = colon < 0 ? [userinfo] : [userinfo.slice(0, colon), userinfo.slice(colon + 1)];
  return parts.every((part) => unescapeGo(part, 'path') !== undefined);
}

/** Go's url.unescape of a byte string; undefined where it returns an error. */
function unescapeGo(text: string, mode: 'host' | 'zone' | 'path'): string | undefined {
  let out = '';
  for (let i = 0; i < text.length; ) {
    const c = text[i] ?? '';
    if (c === '%') {
      const hi = text[i + 1] ?? '';
      const lo = text[i + 2] ?? '';
      if (!HEX.test(hi) || !HEX.test(lo)) return undefined;
      const value = Number.parseInt(hi + lo, 16);
      if (mode === 'host' && value < 0x80 && hi + lo !== '25') return undefined;
      if (mode === 'zone') {
        const byte = String.fromCharCode(value);
        if (hi + lo !== '25' && byte !== ' ' && !HOST_BYTES.test(byte)) return undefined;
      }
      out += String.fromCharCode(value);
      i += 3;
      continue;
    }
    if (mode !== 'path' && c.charCodeAt(0) < 0x80 && !HOST_BYTES.test(c)) return undefined;
    out += c;
    i += 1;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The keyring: keys (Add), matching (URLsMatchStr), order and the Docker Hub fallback (Lookup)

/** keyringKey on a byte string. */
function keyringKeyBytes(server: string): string | undefined {
  const url =
    server.startsWith('https://') || server.startsWith('http://') ? server : `https://${server}`;
  const parsed = parseGoUrl(url);
  if (!parsed) return undefined;
  const path =
    parsed.path.startsWith('/v2/') || parsed.path.startsWith('/v1/')
      ? parsed.path.slice(3)
      : parsed.path;
  return path.length > 0 && path !== '/' ? parsed.host + path : parsed.host;
}

/**
 * The key the kubelet's keyring files an `auths` key under (BasicDockerKeyring.Add): the scheme
 * dropped, Go's url.Parse host and unescaped path, a leading `/v1/` or `/v2/` dropped. Undefined
 * when Go's url.Parse refuses it: the kubelet then ignores the entry.
 */
export function kubeletKeyringKey(server: string): string | undefined {
  const key = keyringKeyBytes(toBytes(server));
  return key === undefined ? undefined : fromBytes(key);
}

interface SplitUrl {
  labels: string[];
  port: string;
  path: string;
}

/** ParseSchemelessURL then SplitURL (net.SplitHostPort, or the whole host when it fails). */
function splitSchemeless(schemeless: string): SplitUrl | undefined {
  const parsed = parseGoUrl(`https://${schemeless}`);
  if (!parsed) return undefined;
  const split = splitHostPort(parsed.host);
  const [host, port] = split ?? [parsed.host, ''];
  return { labels: host.split('.'), port, path: parsed.path };
}

/** Go's net.SplitHostPort; undefined where it returns an error. */
function splitHostPort(hostport: string): [string, string] | undefined {
  const last = hostport.lastIndexOf(':');
  if (last < 0) return undefined;
  let host: string;
  let from = 0;
  let closeFrom = 0;
  if (hostport.startsWith('[')) {
    const end = hostport.indexOf(']');
    if (end < 0 || end + 1 !== last) return undefined;
    host = hostport.slice(1, end);
    [from, closeFrom] = [1, end + 1];
  } else {
    host = hostport.slice(0, last);
    if (host.includes(':')) return undefined;
  }
  if (hostport.slice(from).includes('[') || hostport.slice(closeFrom).includes(']')) {
    return undefined;
  }
  return [host, hostport.slice(last + 1)];
}

/** How a keyring key compares with a repository, part by part (for explaining a near miss). */
export interface KeyComparison {
  matches: boolean;
  /** Same number of host labels, each matching the key's glob. */
  hostMatches: boolean;
  portMatches: boolean;
  pathMatches: boolean;
  keyPort: string;
  imagePort: string;
  keyPath: string;
  imagePath: string;
}

function compareKeyBytes(key: string, repository: string): KeyComparison | undefined {
  const glob = splitSchemeless(key);
  const target = splitSchemeless(repository);
  if (!glob || !target) return undefined;
  const hostMatches =
    glob.labels.length === target.labels.length &&
    glob.labels.every((label, i) => globMatch(label, target.labels[i] ?? ''));
  const portMatches = glob.port === target.port;
  const pathMatches = target.path.startsWith(glob.path);
  return {
    matches: hostMatches && portMatches && pathMatches,
    hostMatches,
    portMatches,
    pathMatches,
    keyPort: fromBytes(glob.port),
    imagePort: fromBytes(target.port),
    keyPath: fromBytes(glob.path),
    imagePath: fromBytes(target.path),
  };
}

/** URLsMatchStr(key, repository) with the parts that decided it; undefined if either is no URL. */
export function compareKeyToRepository(key: string, repository: string): KeyComparison | undefined {
  return compareKeyBytes(toBytes(key), toBytes(repository));
}

/** Go's path/filepath.Match (on Linux: '/' separates, '\\' escapes); false where it errors. */
function globMatch(pattern: string, name: string): boolean {
  let rest = pattern;
  let text = name;
  chunks: while (rest.length > 0) {
    let star = false;
    while (rest.startsWith('*')) {
      rest = rest.slice(1);
      star = true;
    }
    const end = chunkEnd(rest);
    const chunk = rest.slice(0, end);
    rest = rest.slice(end);
    if (star && chunk === '') return !text.includes('/');
    const first = matchChunk(chunk, text);
    if (first.ok && (first.rest.length === 0 || rest.length > 0)) {
      text = first.rest;
      continue;
    }
    if (first.bad) return false;
    if (star) {
      for (let i = 0; i < text.length && text[i] !== '/'; i++) {
        const next = matchChunk(chunk, text.slice(i + 1));
        if (next.ok) {
          if (rest.length === 0 && next.rest.length > 0) continue;
          text = next.rest;
          continue chunks;
        }
        if (next.bad) return false;
      }
    }
    return false;
  }
  return text.length === 0;
}

function chunkEnd(pattern: string): number {
  let inRange = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      if (i + 1 < pattern.length) i++;
    } else if (c === '[') inRange = true;
    else if (c === ']') inRange = false;
    else if (c === '*' && !inRange) return i;
  }
  return pattern.length;
}

interface ChunkResult {
  ok: boolean;
  bad: boolean;
  rest: string;
}

function matchChunk(pattern: string, name: string): ChunkResult {
  let chunk = pattern;
  let s = name;
  let failed = false;
  while (chunk.length > 0) {
    failed = failed || s.length === 0;
    const c = chunk[0];
    if (c === '[') {
      let rune = -1;
      if (!failed) {
        const [r, n] = decodeRune(s);
        rune = r;
        s = s.slice(n);
      }
      chunk = chunk.slice(1);
      let negated = false;
      if (chunk.startsWith('^')) {
        negated = true;
        chunk = chunk.slice(1);
      }
      let match = false;
      let ranges = 0;
      for (;;) {
        if (chunk.startsWith(']') && ranges > 0) {
          chunk = chunk.slice(1);
          break;
        }
        const lo = rangeRune(chunk);
        if (!lo) return { ok: false, bad: true, rest: '' };
        let hi = lo.rune;
        chunk = lo.rest;
        if (chunk.startsWith('-')) {
          const upper = rangeRune(chunk.slice(1));
          if (!upper) return { ok: false, bad: true, rest: '' };
          hi = upper.rune;
          chunk = upper.rest;
        }
        match = match || (lo.rune <= rune && rune <= hi);
        ranges++;
      }
      failed = failed || match === negated;
    } else if (c === '?') {
      if (!failed) {
        failed = s[0] === '/';
        s = s.slice(decodeRune(s)[1]);
      }
      chunk = chunk.slice(1);
    } else {
      if (c === '\\') {
        chunk = chunk.slice(1);
        if (chunk.length === 0) return { ok: false, bad: true, rest: '' };
      }
      if (!failed) {
        failed = chunk[0] !== s[0];
        s = s.slice(1);
      }
      chunk = chunk.slice(1);
    }
  }
  return failed ? { ok: false, bad: false, rest: '' } : { ok: true, bad: false, rest: s };
}

/** filepath's getEsc: one (possibly escaped) character of a range; undefined when malformed. */
function rangeRune(chunk: string): { rune: number; rest: string } | undefined {
  if (chunk.length === 0 || chunk[0] === '-' || chunk[0] === ']') return undefined;
  let text = chunk;
  if (text[0] === '\\') {
    text = text.slice(1);
    if (text.length === 0) return undefined;
  }
  const [rune, n] = decodeRune(text);
  const rest = text.slice(n);
  if ((rune === 0xfffd && n === 1) || rest.length === 0) return undefined;
  return { rune, rest };
}

/** utf8.DecodeRuneInString on a byte string: [rune, bytes], RuneError of 1 byte if invalid. */
function decodeRune(bytes: string): [number, number] {
  if (bytes.length === 0) return [0xfffd, 0];
  const b0 = bytes.charCodeAt(0);
  if (b0 < 0x80) return [b0, 1];
  const size = b0 >= 0xf0 ? 4 : b0 >= 0xe0 ? 3 : b0 >= 0xc2 ? 2 : 0;
  if (size === 0 || bytes.length < size) return [0xfffd, 1];
  const decoded = Buffer.from(bytes.slice(0, size), 'latin1').toString('utf8');
  const rune = decoded.codePointAt(0) ?? 0xfffd;
  // Node's decoder turns invalid bytes into U+FFFD too: valid is what encodes back to the same
  // bytes, so a literal U+FFFD is one rune of 3 bytes, as Go's DecodeRune reads it.
  const valid =
    String.fromCodePoint(rune).length === decoded.length &&
    Buffer.from(decoded, 'utf8').toString('latin1') === bytes.slice(0, size);
  return valid ? [rune, size] : [0xfffd, 1];
}

/** isDefaultRegistryMatch: whether a repository pulls from Docker Hub, by its first part. */
function isDockerHubRepository(repository: string): boolean {
  const slash = repository.indexOf('/');
  const first = slash < 0 ? repository : repository.slice(0, slash);
  if (first.length === 0) return false;
  if (slash < 0) return true;
  if (first === 'docker.io' || first === 'index.docker.io') return true;
  return !/[.:]/.test(first);
}

const DOCKER_HUB_FALLBACK_KEY = 'index.docker.io';

// ---------------------------------------------------------------------------------------------
// Pull Secrets (secrets.MakeDockerKeyring and the config's JSON as Go's encoding/json reads it)

/** A pull Secret as the API returns it: `data` values in base64. */
export interface PullSecret {
  name: string;
  type?: string;
  data?: Record<string, string>;
}

/** One `auths` entry as the kubelet reads it (the password is never carried out of here). */
export interface KeyringEntry {
  /** The `auths` key as written. */
  server: string;
  /** The keyring key it is filed under; undefined when the kubelet ignores the key. */
  key: string | undefined;
  username: string;
  hasPassword: boolean;
}

export type ReadPullSecret =
  | { readable: true; used: boolean; entries: KeyringEntry[] }
  | { readable: false; reason: string };

/**
 * What the kubelet reads from one pull Secret. `used: false` when it is not a dockerconfigjson
 * (or dockercfg) Secret with its key set: the kubelet skips it. Unreadable when its JSON is not
 * what Go's encoding/json accepts into the kubelet's types: the kubelet then fails every pull of
 * the Pod. Reasons never quote the Secret's content.
 */
export function readPullSecret(secret: PullSecret): ReadPullSecret {
  const data = secret.data ?? {};
  let legacy: boolean;
  let encoded: string | undefined;
  if (secret.type === DOCKER_CONFIG_JSON_TYPE && data[DOCKER_CONFIG_JSON_KEY]) {
    [legacy, encoded] = [false, data[DOCKER_CONFIG_JSON_KEY]];
  } else if (secret.type === DOCKERCFG_TYPE && data[DOCKERCFG_KEY]) {
    [legacy, encoded] = [true, data[DOCKERCFG_KEY]];
  } else {
    return { readable: true, used: false, entries: [] };
  }
  const text = Buffer.from(encoded ?? '', 'base64').toString('utf8');
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    return { readable: false, reason: 'it is not valid JSON' };
  }
  let auths: unknown = document;
  if (!legacy) {
    if (document !== null && !isObject(document)) return notAnObject('the config');
    const headers = isObject(document) ? field(document, 'httpheaders') : undefined;
    if (headers !== undefined && headers !== null) {
      if (
        !isObject(headers) ||
        Object.values(headers).some((v) => v !== null && typeof v !== 'string')
      ) {
        return { readable: false, reason: 'HttpHeaders is not an object of strings' };
      }
    }
    auths = isObject(document) ? field(document, 'auths') : undefined;
  }
  if (auths === undefined || auths === null) return { readable: true, used: true, entries: [] };
  if (!isObject(auths)) return notAnObject(legacy ? 'the config' : 'auths');
  const entries: KeyringEntry[] = [];
  for (const [server, value] of Object.entries(auths)) {
    const entry = readEntry(value);
    if (typeof entry === 'string') return { readable: false, reason: entry };
    entries.push({ server, key: kubeletKeyringKey(server), ...entry });
  }
  return { readable: true, used: true, entries };
}

function readEntry(value: unknown): { username: string; hasPassword: boolean } | string {
  if (value === null) return { username: '', hasPassword: false };
  if (!isObject(value)) return 'an auths entry is not an object';
  const strings: Record<string, string> = {};
  for (const name of ['username', 'password', 'email', 'auth']) {
    const v = field(value, name);
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string') return `an auths entry's ${name} is not a string`;
    strings[name] = v;
  }
  const auth = strings.auth ?? '';
  if (auth.length === 0) {
    return { username: strings.username ?? '', hasPassword: (strings.password ?? '') !== '' };
  }
  const decoded = decodeAuthField(auth);
  if (!decoded) return "an auths entry's auth is not base64 of user:password";
  return { username: decoded.username, hasPassword: decoded.password !== '' };
}

/** encoding/json's field lookup: an exact name, else one equal under case folding; the last wins. */
function field(object: Record<string, unknown>, name: string): unknown {
  let found: unknown;
  for (const key of Object.keys(object)) {
    if (foldJsonName(key) === name) found = object[key];
  }
  return found;
}

function foldJsonName(key: string): string {
  // Unicode simple folding maps these two onto ASCII letters; Go's encoding/json honours it.
  return asciiLower(key.replace(/\u017f/g, 's').replace(/\u212a/g, 'k'));
}

function notAnObject(what: string): ReadPullSecret {
  return { readable: false, reason: `${what} is not a JSON object` };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ---------------------------------------------------------------------------------------------
// Lookup

export interface KeyringCandidate {
  /** The pull Secret's name. */
  secret: string;
  /** Its position in the Pod's imagePullSecrets (a Secret listed twice is read twice). */
  secretIndex: number;
  /** The `auths` key as written, and the keyring key it matched under. */
  server: string;
  key: string;
  username: string;
  hasPassword: boolean;
  /** Matched by the Docker Hub fallback (`index.docker.io`), not by the key itself. */
  dockerHubFallback: boolean;
  /**
   * Other candidates of the same Secret under the same key: the kubelet takes them in Go map
   * order, which changes from pull to pull. They are listed here by `server`.
   */
  unorderedWith: string[];
}

export type CredentialLookup =
  | { ok: true; image: ImageReference; candidates: KeyringCandidate[] }
  | { ok: false; reason: 'InvalidImage'; message: string }
  | { ok: false; reason: 'UnreadableSecret'; secret: string; message: string };

/**
 * The credentials the kubelet tries for an image, in its order, from a Pod's pull Secrets in
 * the Pod's order (missing ones left out, as the kubelet does). The node's own credentials
 * (its config.json, credential provider plugins) come after these and are not known here.
 */
export function lookupCredentials(image: string, secrets: readonly PullSecret[]): CredentialLookup {
  let reference: ImageReference;
  try {
    reference = parseImageReference(image);
  } catch (error) {
    return { ok: false, reason: 'InvalidImage', message: (error as Error).message };
  }
  const filed: Array<{ key: string; secretIndex: number; secret: string; entry: KeyringEntry }> =
    [];
  for (const [secretIndex, secret] of secrets.entries()) {
    const read = readPullSecret(secret);
    if (!read.readable) {
      return {
        ok: false,
        reason: 'UnreadableSecret',
        secret: secret.name,
        message: `Secret ${secret.name} cannot be read by the kubelet (${read.reason}), so it fails every pull of the Pod`,
      };
    }
    for (const entry of read.entries) {
      if (entry.key !== undefined)
        filed.push({ key: toBytes(entry.key), secretIndex, secret: secret.name, entry });
    }
  }
  return { ok: true, image: reference, candidates: lookupFiled(filed, reference.repository) };
}

function lookupFiled(
  filed: Array<{ key: string; secretIndex: number; secret: string; entry: KeyringEntry }>,
  repository: string,
): KeyringCandidate[] {
  const target = toBytes(repository);
  const keys = [...new Set(filed.map((f) => f.key))].sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
  const candidatesFor = (key: string, dockerHubFallback: boolean): KeyringCandidate[] => {
    const group = filed
      .filter((f) => f.key === key)
      .sort((a, b) => a.secretIndex - b.secretIndex || compare(a.entry.server, b.entry.server));
    return group.map((f) => ({
      secret: f.secret,
      secretIndex: f.secretIndex,
      server: f.entry.server,
      key: fromBytes(key),
      username: f.entry.username,
      hasPassword: f.entry.hasPassword,
      dockerHubFallback,
      unorderedWith: group
        .filter((g) => g !== f && g.secretIndex === f.secretIndex)
        .map((g) => g.entry.server),
    }));
  };
  const matched = keys
    .filter((key) => compareKeyBytes(key, target)?.matches === true)
    .flatMap((key) => candidatesFor(key, false));
  if (matched.length > 0) return matched;
  if (isDockerHubRepository(target) && keys.includes(DOCKER_HUB_FALLBACK_KEY)) {
    return candidatesFor(DOCKER_HUB_FALLBACK_KEY, true);
  }
  return [];
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Longer than any reference the kubelet can pull (a domain of at most 253 characters and a
 * port, a path of at most 255, a tag of 128, a sha512 digest of 135): what the operator refuses
 * to parse at all. Parsing is not linear in the length, and a Pod's image is a tenant's string.
 */
export const MAX_IMAGE_REFERENCE_LENGTH = 1024;

/**
 * Whether the kubelet would offer a credential filed under `server` (an `auths` key) for
 * `image`, were it the only one: the key matches the image's repository, or it is Docker Hub's
 * fallback key and the image is on Docker Hub. False when either cannot be parsed.
 */
export function imageMatchesServer(image: string, server: string): boolean {
  let repository: string;
  try {
    repository = parseImageReference(image).repository;
  } catch {
    return false;
  }
  return repositoryMatchesServer(repository, server);
}

/** imageMatchesServer for a repository already parsed (parseImageReference's `repository`). */
export function repositoryMatchesServer(repository: string, server: string): boolean {
  const key = kubeletKeyringKey(server);
  if (key === undefined) return false;
  const filed = [
    {
      key: toBytes(key),
      secretIndex: 0,
      secret: '',
      entry: { server, key, username: '', hasPassword: false },
    },
  ];
  return lookupFiled(filed, repository).length > 0;
}
