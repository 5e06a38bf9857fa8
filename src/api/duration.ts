// Go's time.ParseDuration, so `refreshInterval` means what it means to kubectl users:
// "1h", "1h30m", "1.5h", "90s", "300ms", "-2m"; units ns, us, µs, ms, s, m, h; a bare "0".
// Computed in whole nanoseconds like Go (fractions below 1ns are dropped), returned in ms.
import { CredentialError } from '../credentials/errors.ts';

const NANOS_PER_UNIT: ReadonlyMap<string, bigint> = new Map([
  ['ns', 1n],
  ['us', 1_000n],
  ['\u00b5s', 1_000n], // µ MICRO SIGN
  ['\u03bcs', 1_000n], // μ GREEK SMALL LETTER MU
  ['ms', 1_000_000n],
  ['s', 1_000_000_000n],
  ['m', 60_000_000_000n],
  ['h', 3_600_000_000_000n],
]);

/** Go's limit: a Duration is an int64 count of nanoseconds. */
const MAX_NANOS = 2n ** 63n - 1n;

const COMPONENT = /^(\d*)(?:\.(\d*))?([^\d.]+)/;

/** Milliseconds in a Go duration string; throws CredentialError('InvalidSpec') otherwise. */
export function parseDuration(s: string): number {
  const fail = (): never => {
    const shown = s.length > 40 ? `${s.slice(0, 40)}…` : s;
    throw new CredentialError('InvalidSpec', `invalid duration ${JSON.stringify(shown)}`);
  };

  let rest = s;
  let negative = false;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    negative = rest.startsWith('-');
    rest = rest.slice(1);
  }
  if (rest === '0') return 0;
  if (rest === '') fail();

  let nanos = 0n;
  while (rest !== '') {
    const match = COMPONENT.exec(rest);
    if (match === null) return fail();
    const [whole, intDigits = '', fracDigits = '', unitText = ''] = match;
    if (intDigits === '' && fracDigits === '') fail();
    const unit = NANOS_PER_UNIT.get(unitText);
    if (unit === undefined) return fail();

    let value = BigInt(intDigits || '0') * unit;
    if (fracDigits !== '') {
      value += (BigInt(fracDigits) * unit) / 10n ** BigInt(fracDigits.length);
    }
    nanos += value;
    if (nanos > MAX_NANOS + (negative ? 1n : 0n)) fail();
    rest = rest.slice(whole.length);
  }
  const ms = Number(nanos) / 1e6;
  return negative && ms !== 0 ? -ms : ms;
}

/** Formats milliseconds the way Go's Duration.String() does for whole units ("1h30m0s"). */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) throw new RangeError('duration must be finite');
  if (ms === 0) return '0s';
  const sign = ms < 0 ? '-' : '';
  let rest = Math.abs(ms);
  if (rest < 1000) return `${sign}${trimNumber(rest)}ms`;
  const hours = Math.floor(rest / 3_600_000);
  rest -= hours * 3_600_000;
  const minutes = Math.floor(rest / 60_000);
  rest -= minutes * 60_000;
  const seconds = trimNumber(rest / 1000);
  if (hours > 0) return `${sign}${hours}h${minutes}m${seconds}s`;
  if (minutes > 0) return `${sign}${minutes}m${seconds}s`;
  return `${sign}${seconds}s`;
}

function trimNumber(n: number): string {
  return String(Number(n.toFixed(9)));
}
