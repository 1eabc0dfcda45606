/**
 * `npm run bench` (issue 8): every figure next to its ceiling, measured in the same run, as a table on
 * stdout; `-- --json` prints one JSON object instead; `-- --quick` is a short run; `-- --only a,b` runs
 * only those sections (crypto, oneway, rsmc, wire, device, storage, footprint). Progress goes to stderr.
 * A section that throws is reported and makes the exit code 1; the others still run.
 */
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { chooseBackend, cryptoSection } from './crypto.js';
import { missesTarget, runMeta, type Figure, type Section } from './lib.js';
import { deviceSection, onewaySection } from './oneway.js';
import { rsmcSection, wireSection } from './rsmc.js';
import { storageSection } from './storage.js';
import { footprintSection } from './footprint.js';

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    json: { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
  },
});

const all: Array<{ id: string; section: Section }> = [
  { id: 'crypto', section: cryptoSection },
  { id: 'oneway', section: onewaySection },
  { id: 'rsmc', section: rsmcSection },
  { id: 'wire', section: wireSection },
  { id: 'device', section: deviceSection },
  { id: 'storage', section: storageSection },
  { id: 'footprint', section: footprintSection },
];

const only = values.only?.split(',').map((s) => s.trim()).filter((s) => s !== '');
const unknown = only?.filter((id) => !all.some((s) => s.id === id));
if (unknown && unknown.length > 0) {
  process.stderr.write(`bench: unknown section(s) ${unknown.join(', ')}; known: ${all.map((s) => s.id).join(', ')}\n`);
  process.exit(2);
}

const log = (line: string): void => void process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
const opts = { quick: values.quick, log };
const backend = chooseBackend();
const started = performance.now();

interface Done {
  id: string;
  name: string;
  figures: Figure[];
  error?: string;
  seconds: number;
}
const done: Done[] = [];
for (const { id, section } of all) {
  if (only && !only.includes(id)) continue;
  if (!section) {
    if (only) done.push({ id, name: id, figures: [], error: `bench/${id}.ts is not there`, seconds: 0 });
    continue;
  }
  log(`section ${section.name}`);
  const t = performance.now();
  try {
    done.push({ id, name: section.name, figures: await section.run(opts), seconds: (performance.now() - t) / 1000 });
  } catch (error) {
    log(`section ${section.name} failed: ${(error as Error).stack ?? String(error)}`);
    done.push({ id, name: section.name, figures: [], error: (error as Error).message, seconds: (performance.now() - t) / 1000 });
  }
}
const wallSeconds = (performance.now() - started) / 1000;

const meta = {
  node: process.version,
  cpu: cpus()[0]?.model ?? 'unknown',
  cores: cpus().length,
  backend: backend.name,
  backendDescription: backend.description,
  broker: 'aedes (embedded, loopback)',
  ...runMeta,
  quick: opts.quick,
  date: new Date().toISOString(),
  wallSeconds: Math.round(wallSeconds),
};
const figures = done.flatMap((d) => d.figures);
const misses = figures.filter(missesTarget).map((f) => ({ key: f.key, target: f.target!, value: f.value, why: f.why ?? (f.value === null ? 'not measured' : 'no reason given') }));
const failed = done.filter((d) => d.error !== undefined);

if (values.json) {
  const out: Record<string, unknown> = {};
  // Figures first, then ceilings under their own keys (a ceiling that is also a figure keeps the figure's
  // value). Two sections must not use one key: the later one is renamed and said so on stderr.
  for (const d of done) {
    for (const f of d.figures) {
      let key = f.key;
      if (key in out) {
        key = `${f.key}@${d.id}`;
        log(`duplicate JSON key ${f.key} (section ${d.name}): written as ${key}`);
      }
      out[key] = f.value;
    }
  }
  for (const f of figures) {
    if (!f.ceiling) continue;
    const key = f.ceiling.key ?? `${f.key}Ceiling`;
    if (!(key in out)) out[key] = f.ceiling.value;
  }
  out.meta = meta;
  out.misses = misses;
  if (failed.length > 0) out.errors = failed.map((d) => ({ section: d.name, error: d.error }));
  await write(`${JSON.stringify(out, null, 2)}\n`);
} else {
  await write(table());
}
process.exit(failed.length > 0 ? 1 : 0);

function write(text: string): Promise<void> {
  return new Promise((resolve) => process.stdout.write(text, () => resolve()));
}

function num(value: number | null): string {
  if (value === null) return '—';
  return Math.abs(value) >= 1000 ? Math.round(value).toLocaleString('en') : String(value);
}

function table(): string {
  const lines: string[] = [
    `Trickle bench ${opts.quick ? '(quick) ' : ''}— node ${meta.node}, ${meta.cpu} × ${meta.cores}, secp256k1: ${backend.description}, ${String(meta.broker)}, ${meta.date}, ${meta.wallSeconds} s`,
    '',
  ];
  const head = ['figure', 'value', 'unit', 'ceiling (same run)', 'target', ''];
  for (const d of done) {
    lines.push(`== ${d.name} (${d.seconds.toFixed(0)} s)`);
    if (d.error !== undefined) {
      lines.push(`   SECTION FAILED: ${d.error}`, '');
      continue;
    }
    const rows = d.figures.map((f) => [
      f.key,
      num(f.value),
      f.unit,
      f.ceiling ? `${num(f.ceiling.value)} ${f.ceiling.unit}` : '',
      f.target ? `${f.target.op} ${num(f.target.value)}` : '',
      missesTarget(f) ? 'MISSED' : f.target ? 'ok' : '',
    ]);
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const fmt = (r: string[]): string => r.map((c, i) => (i === 1 || i === 3 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
    lines.push(`   ${fmt(head)}`);
    d.figures.forEach((f, i) => {
      lines.push(`   ${fmt(rows[i]!)}`);
      lines.push(`       ${f.label}`);
      if (f.ceiling) lines.push(`       ceiling: ${f.ceiling.label}`);
      if (f.why && (missesTarget(f) || f.value === null)) lines.push(`       ${f.value === null ? 'not measured' : 'MISSED'}: ${f.why}`);
    });
    lines.push('');
  }
  if (misses.length > 0) lines.push(`Targets missed: ${misses.map((m) => m.key).join(', ')}`);
  if (failed.length > 0) lines.push(`Sections failed: ${failed.map((d) => d.name).join(', ')}`);
  return `${lines.join('\n')}\n`;
}
