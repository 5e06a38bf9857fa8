// The last line of defence against credential leaks: every credential value the operator reads
// is registered here, and every log line, Event message, status message and error that leaves
// the process goes through `redact`. Key names that always hold secrets are masked as well, so a
// caller that passes a whole Secret or a dockerconfigjson cannot leak it either.

const MASK = '[REDACTED]';
const SENSITIVE_KEYS =
  /^(password|passwd|secret|token|auth|identitytoken|registrytoken|access_?token|refresh_?token|id_?token|client_?secret|private_?key|private_key_id|secretaccesskey|aws_secret_access_key|aws_session_token|sessiontoken|authorization|\.dockerconfigjson|\.dockercfg|data|stringdata)$/i;

/** Shorter values are not tracked: masking "a" or "ab" everywhere would garble every message. */
const MIN_TRACKED_LENGTH = 4;
const MAX_TRACKED = 20_000;
/**
 * V8 refuses a regular expression with a literal much over 32 K characters ("Regular expression
 * too large"), and its message quotes the pattern: longer values are found by plain search.
 */
const MAX_PATTERN_VALUE_LENGTH = 4_096;

function escapeRegExp(value: string): string {
  return value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Characters kept for long values (whole dockerconfigjsons and their base64): each rotation
 * adds new ones, and a count limit alone would let them grow to gigabytes.
 */
const MAX_LONG_CHARS = 16 * 1024 * 1024;

/** The forms a value takes in text the operator lets out: as is, base64, inside a JSON string. */
export function credentialForms(value: string): string[] {
  return [
    ...new Set([value, Buffer.from(value).toString('base64'), JSON.stringify(value).slice(1, -1)]),
  ];
}

export class SecretValues {
  private readonly values = new Set<string>();
  private pattern: RegExp | undefined;
  private long: string[] = [];

  /** Registers credential values (as is, base64, JSON-escaped) so they never leave the process. */
  add(...values: Array<string | undefined>): void {
    let changed = false;
    for (const value of values) {
      if (value === undefined || value.length < MIN_TRACKED_LENGTH) continue;
      for (const form of credentialForms(value)) {
        if (!this.values.has(form)) {
          this.values.add(form);
          changed = true;
        }
      }
    }
    if (changed) this.evictOldest();
    if (changed) this.pattern = undefined;
  }

  /** Registers a username/password pair in every form a pull Secret carries it. */
  addLogin(username: string | undefined, password: string | undefined): void {
    if (password === undefined || password === '') return;
    // `user:password` and its base64 (the `auth` field), also when the password is short.
    this.add(password, `${username ?? ''}:${password}`);
  }

  // Keeps the newest; old rotated tokens are the least likely to still be in flight.
  private evictOldest(): void {
    let longChars = 0;
    for (const v of this.values) if (v.length > MAX_PATTERN_VALUE_LENGTH) longChars += v.length;
    const excess = this.values.size - MAX_TRACKED;
    if (excess <= 0 && longChars <= MAX_LONG_CHARS) return;
    let dropped = 0;
    for (const v of this.values) {
      if (dropped >= excess && longChars <= MAX_LONG_CHARS) break;
      if (dropped < excess || v.length > MAX_PATTERN_VALUE_LENGTH) {
        this.values.delete(v);
        dropped += 1;
        if (v.length > MAX_PATTERN_VALUE_LENGTH) longChars -= v.length;
      }
    }
  }

  get size(): number {
    return this.values.size;
  }

  /** Replaces every registered value inside `text`. */
  scrub(text: string): string {
    if (this.values.size === 0) return text;
    if (this.pattern === undefined) {
      const sorted = [...this.values].sort((a, b) => b.length - a.length);
      this.long = sorted.filter((v) => v.length > MAX_PATTERN_VALUE_LENGTH);
      const short = sorted.filter((v) => v.length <= MAX_PATTERN_VALUE_LENGTH);
      // (?!) never matches: there is nothing short to look for.
      this.pattern = new RegExp(short.length > 0 ? short.map(escapeRegExp).join('|') : '(?!)', 'g');
    }
    let out = text;
    for (const value of this.long) {
      if (out.includes(value)) out = out.split(value).join(MASK);
    }
    return out.replace(this.pattern, MASK);
  }
}

/** The process-wide registry; credential sources add to it as they read. */
export const secretValues = new SecretValues();

/** Deep-copies `value` with sensitive keys masked and registered values scrubbed from strings. */
export function redact(value: unknown, values: SecretValues = secretValues, depth = 0): unknown {
  if (typeof value === 'string') return values.scrub(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth > 8) return '[…]';
  if (value instanceof Error) {
    return { name: value.name, message: values.scrub(value.message) };
  }
  if (Array.isArray(value)) return value.map((item) => redact(item, values, depth + 1));
  if (value instanceof Date) return value.toISOString();
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    out[key] =
      SENSITIVE_KEYS.test(key) && inner !== undefined && inner !== null && inner !== ''
        ? MASK
        : redact(inner, values, depth + 1);
  }
  return out;
}

/** A message that is safe to put in an Event, a status condition or a log line. */
export function safeMessage(
  text: string,
  maxLength = 512,
  values: SecretValues = secretValues,
): string {
  const scrubbed = values.scrub(text);
  return scrubbed.length > maxLength ? `${scrubbed.slice(0, maxLength - 1)}…` : scrubbed;
}
