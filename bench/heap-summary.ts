// Summarises a V8 heap snapshot (`--heapsnapshot-signal=SIGUSR2` in --operator-node-args, then
// `kill -USR2 <operator pid>`): live bytes by node type and constructor, and the strings held
// more than 1,000 times (values that many cached objects each carry a copy of).
//   node bench/heap-summary.ts <file.heapsnapshot>
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
}

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: node bench/heap-summary.ts <file.heapsnapshot>\n');
  process.exit(2);
}
const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
const fields = snap.snapshot.meta.node_fields;
const width = fields.length;
const [typeNames] = snap.snapshot.meta.node_types;
const at = {
  type: fields.indexOf('type'),
  name: fields.indexOf('name'),
  size: fields.indexOf('self_size'),
};
const byKind = new Map<string, { count: number; bytes: number }>();
const byString = new Map<string, { count: number; bytes: number }>();
let total = 0;
const add = (map: typeof byKind, key: string, bytes: number) => {
  const entry = map.get(key) ?? { count: 0, bytes: 0 };
  entry.count++;
  entry.bytes += bytes;
  map.set(key, entry);
};
for (let i = 0; i < snap.nodes.length; i += width) {
  const type = typeNames[snap.nodes[i + at.type] ?? 0] ?? '?';
  const name = snap.strings[snap.nodes[i + at.name] ?? 0] ?? '';
  const bytes = snap.nodes[i + at.size] ?? 0;
  total += bytes;
  add(byKind, type.endsWith('string') ? type : `${type}: ${name.slice(0, 60)}`, bytes);
  if (type === 'string') add(byString, name.length > 40 ? `${name.slice(0, 40)}…` : name, bytes);
}
const mb = (bytes: number) => (bytes / 1e6).toFixed(2).padStart(8);
const rows = (map: typeof byKind, min: number, limit: number) =>
  [...map]
    .filter(([, v]) => v.count >= min)
    .sort((a, b) => b[1].bytes - a[1].bytes)
    .slice(0, limit)
    .map(([key, v]) => `${mb(v.bytes)} MB ${String(v.count).padStart(9)}  ${JSON.stringify(key)}`)
    .join('\n');
process.stdout.write(`live heap ${mb(total)} MB in ${snap.nodes.length / width} nodes\n`);
process.stdout.write(`${rows(byKind, 1, 30)}\n\nstrings held more than 1,000 times:\n`);
process.stdout.write(`${rows(byString, 1001, 20)}\n`);
