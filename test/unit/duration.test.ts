import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatDuration, parseDuration } from '../../src/api/duration.ts';
import { CredentialError } from '../../src/credentials/errors.ts';

const H = 3_600_000;
const M = 60_000;
const S = 1000;

describe('parseDuration (Go time.ParseDuration)', () => {
  const valid: [string, number][] = [
    ['1h', H],
    ['1h30m', H + 30 * M],
    ['90s', 90 * S],
    ['1.5h', 1.5 * H],
    ['300ms', 300],
    ['2h45m10s', 2 * H + 45 * M + 10 * S],
    ['1m', M],
    ['0', 0],
    ['+0', 0],
    ['0s', 0],
    ['-1m', -M],
    ['+5m', 5 * M],
    ['.5h', 0.5 * H],
    ['1.h', H],
    ['1h1h', 2 * H],
    ['1s500ms', 1500],
    ['1500us', 1.5],
    ['1500µs', 1.5], // U+00B5 MICRO SIGN
    ['1500μs', 1.5], // U+03BC GREEK SMALL LETTER MU
    ['2000000ns', 2],
    ['0.000000001s', 0.000001],
    ['0.0000000019s', 0.000001], // Go truncates below one nanosecond
    ['24h', 24 * H],
    ['2562047h47m16.854775807s', Number(2n ** 63n - 1n) / 1e6], // Go's largest Duration
    ['-2562047h47m16.854775808s', -Number(2n ** 63n) / 1e6], // and its smallest
    ['-0s', 0], // zero, not JavaScript's -0: Go has no negative zero
  ];
  for (const [input, ms] of valid) {
    it(`reads ${JSON.stringify(input)} as ${ms} ms`, () => {
      assert.equal(parseDuration(input), ms);
    });
  }

  const invalid = [
    '',
    '1',
    '10',
    'h',
    '1d',
    '1w',
    '1H',
    '1 h',
    ' 1h',
    '1h ',
    '.h',
    '1..5h',
    '1.5.5h',
    '-',
    '+',
    '--1h',
    '1h-30m',
    '1e3s',
    'Infinityh',
    'NaN',
    '１h', // a full-width digit
    '2562047h47m16.854775808s', // one nanosecond past Go's limit
    '9999999999999999999h',
  ];
  for (const input of invalid) {
    it(`refuses ${JSON.stringify(input)} as InvalidSpec`, () => {
      assert.throws(
        () => parseDuration(input),
        (err: unknown) => err instanceof CredentialError && err.reason === 'InvalidSpec',
      );
    });
  }

  it('names the rejected value, shortened, in the message', () => {
    assert.throws(() => parseDuration('1 day'), /invalid duration "1 day"/);
    assert.throws(() => parseDuration('x'.repeat(100)), /invalid duration "x{40}…"/);
  });

  it('names a rejected value of up to 40 characters whole', () => {
    const forty = `1${'x'.repeat(39)}`;
    assert.throws(() => parseDuration(forty), {
      message: `invalid duration ${JSON.stringify(forty)}`,
    });
  });

  it('adds up components in any combination (property)', () => {
    const part = fc.tuple(
      fc.integer({ min: 0, max: 10_000 }),
      fc.constantFrom('h', 'm', 's', 'ms'),
    );
    const unitMs: Record<string, number> = { h: H, m: M, s: S, ms: 1 };
    fc.assert(
      fc.property(fc.array(part, { minLength: 1, maxLength: 6 }), fc.boolean(), (parts, neg) => {
        const text = `${neg ? '-' : ''}${parts.map(([n, u]) => `${n}${u}`).join('')}`;
        const total = parts.reduce((sum, [n, u]) => sum + n * (unitMs[u] ?? Number.NaN), 0);
        assert.equal(parseDuration(text), neg && total !== 0 ? -total : total);
      }),
    );
  });

  it('never throws anything but InvalidSpec on arbitrary text (property)', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        try {
          const ms = parseDuration(s);
          assert.ok(Number.isFinite(ms));
        } catch (err) {
          assert.ok(err instanceof CredentialError && err.reason === 'InvalidSpec');
        }
      }),
    );
  });
});

describe('formatDuration', () => {
  const cases: [number, string][] = [
    [0, '0s'],
    [300, '300ms'],
    [1500, '1.5s'],
    [S, '1s'],
    [M, '1m0s'],
    [H + 30 * M, '1h30m0s'],
    [-90 * S, '-1m30s'],
  ];
  for (const [ms, text] of cases) {
    it(`writes ${ms} ms as ${text}, which parseDuration reads back`, () => {
      assert.equal(formatDuration(ms), text);
      assert.equal(parseDuration(text), ms);
    });
  }
});

describe('formatDuration of what is not a duration', () => {
  it('refuses infinity and NaN instead of writing them as text no reader parses', () => {
    for (const ms of [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NaN]) {
      assert.throws(() => formatDuration(ms), {
        name: 'RangeError',
        message: 'duration must be finite',
      });
    }
  });
});
