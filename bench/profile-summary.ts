// `node bench/profile-summary.ts <file.cpuprofile> [top] [--window <from>:<to>[,...]]`: self
// and inclusive time per function of a V8 CPU profile (as written by --cpu-prof), the heaviest
// first. `--window` keeps only the samples taken between two CLOCK_MONOTONIC times in µs (the
// profile's own clock, and `process.hrtime.bigint() / 1000n` in any process on the machine: the
// webhook scenario logs each phase's windows this way), or within any of several such spans.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function label(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const where = url
    ? `${relative(process.cwd(), url.replace(/^file:\/\//, ''))}:${lineNumber + 1}`
    : '';
  return `${functionName || '(anonymous)'} ${where}`.trim();
}

/** A span of the profile's clock (µs, CLOCK_MONOTONIC). */
export interface Window {
  from: number;
  to: number;
}

export function summarize(profile: Profile, top = 30, windows?: readonly Window[]): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (windows && !windows.some((w) => at >= w.from && at <= w.to)) return;
    selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
  });
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    self.set(label(node), (self.get(label(node)) ?? 0) + us);
    const seen = new Set<string>();
    for (let up: number | undefined = id; up !== undefined; up = parent.get(up)) {
      const n = byId.get(up);
      if (!n) break;
      const key = label(n);
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + us);
    }
  }
  const totalUs = windows
    ? windows.reduce(
        (sum, w) =>
          sum + Math.max(0, Math.min(w.to, profile.endTime) - Math.max(w.from, profile.startTime)),
        0,
      )
    : profile.endTime - profile.startTime;
  const busy = [...self.entries()]
    .filter(([k]) => !k.startsWith('(idle)') && !k.startsWith('(program)'))
    .reduce((a, [, v]) => a + v, 0);
  const rows = (map: Map<string, number>) =>
    [...map.entries()]
      .filter(([k]) => !k.startsWith('(idle)') && !k.startsWith('(root)'))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(
        ([k, v]) =>
          `  ${(v / 1000).toFixed(0).padStart(8)} ms  ${((100 * v) / busy).toFixed(1).padStart(5)} %  ${k}`,
      );
  return [
    `${windows ? `${windows.length} window(s) of the ` : ''}profile: ${(totalUs / 1e6).toFixed(1)} s wall, ${(busy / 1e6).toFixed(2)} s on CPU (excluding idle)`,
    'self time:',
    ...rows(self),
    'inclusive time:',
    ...rows(inclusive),
  ].join('\n');
}

if (import.meta.filename === process.argv[1]) {
  const args = process.argv.slice(2);
  let windows: Window[] | undefined;
  const w = args.indexOf('--window');
  if (w >= 0) {
    windows = (args[w + 1] ?? '').split(',').map((span) => {
      const [from, to] = span.split(':').map(Number);
      if (!Number.isFinite(from) || !Number.isFinite(to)) {
        process.stderr.write('--window wants <from>:<to>[,<from>:<to>...] in µs\n');
        process.exit(2);
      }
      return { from: from as number, to: to as number };
    });
    args.splice(w, 2);
  }
  const [file, top] = args;
  if (!file) {
    process.stderr.write(
      'usage: node bench/profile-summary.ts <file.cpuprofile> [top] [--window <from>:<to>[,...]]\n',
    );
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  process.stdout.write(`${summarize(profile, top ? Number(top) : 30, windows)}\n`);
}
