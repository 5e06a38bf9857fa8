// Values that many cached objects carry, kept once. Every managed Secret of one credential has
// the same ownerReference, labels, type and data digest, and each is decoded from its own watch
// event, so without this each of the 75,000 Secrets of 50 credentials over 3,000 namespaces
// carries its own copies (issue #20: ~1 KB per cached Secret, half of it these copies).
//
// Shared values are frozen: cached objects are never written to (informer.ts), and one shared
// by thousands must not be. The pools are bounded: past `max` distinct values a pool starts
// over, which only loses sharing (a tenant making Secrets with our labels and ever new label
// values cannot grow them).

export class SharedValues {
  readonly #strings = new Map<string, string>();
  readonly #json = new Map<string, unknown>();
  readonly #max: number;

  constructor(max = 50_000) {
    this.#max = max;
  }

  /** The one copy of `s` (a namespace, a type, a digest). */
  string<S extends string | undefined>(s: S): S {
    if (s === undefined) return s;
    const kept = this.#strings.get(s);
    if (kept !== undefined) return kept as S;
    if (this.#strings.size >= this.#max) this.#strings.clear();
    this.#strings.set(s, s);
    return s;
  }

  /** The one frozen copy of a JSON value equal to `value` (labels, ownerReferences). */
  json<T>(value: T): T {
    if (value === undefined || value === null || typeof value !== 'object') return value;
    const key = JSON.stringify(value);
    const kept = this.#json.get(key);
    if (kept !== undefined) return kept as T;
    if (this.#json.size >= this.#max) this.#json.clear();
    const frozen = deepFreeze(value);
    this.#json.set(key, frozen);
    return frozen;
  }
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
