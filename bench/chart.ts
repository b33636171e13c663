// The benchmark's picture: a horizontal bar chart (SVG, generated here, no dependency) of the
// main same-run ratios in bench/results.json, all as "× ws + bufferutil, higher is better"
// (times and memory inverted), a line at 1 for ws + bufferutil.
//
//   node build/bench/chart.js [results.json] [out.svg]   (run.js writes bench/results.svg itself)

import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';

interface ByVariant {
  ratioMedian: number | null;
  median: number | null;
}

export interface ResultsJson {
  meta: { date: string; command: string };
  variants: Array<{ id: string; label: string; group?: string }>;
  metrics: Array<{ key: string; label: string; unit: string; better: 'higher' | 'lower'; byVariant: Record<string, ByVariant> }>;
}

/** The bars of each row, in this order, where measured. */
const SERIES: ReadonlyArray<{ id: string; label: string; color: string }> = [
  { id: 'srv-ours', label: 'websockets.ts server (lean client)', color: '#2b6cb0' },
  { id: 'srv-uws', label: 'uWebSockets.js server (lean client)', color: '#c05621' },
  { id: 'srv-net', label: 'node:net ceiling (lean client)', color: '#718096' },
  { id: 'ours', label: 'websockets.ts both ends (vs ws + bufferutil both ends)', color: '#68d391' },
];

const CAP = 4;
const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function renderChart(results: ResultsJson): string {
  const present = SERIES.filter((s) => results.variants.some((v) => v.id === s.id));
  const rows = results.metrics
    // Not ratios worth a bar: the codec microbenchmarks, and round trips completed (a check that the servers kept up).
    .filter((m) => !m.key.startsWith('codec.') && m.key !== 'active.rate')
    .map((m) => ({
      label: `${m.label} (${m.better === 'higher' ? m.unit : `${m.unit}, inverted`})`,
      bars: present.map((s) => {
        const r = m.byVariant[s.id]?.ratioMedian;
        if (r === null || r === undefined || !Number.isFinite(r)) return { series: s, value: null as number | null };
        const speed = m.better === 'higher' ? r : r > 0 ? 1 / r : Infinity;
        return { series: s, value: speed };
      }),
    }))
    .filter((row) => row.bars.some((b) => b.value !== null));
  // Wide enough for the longest label (about 6.2 px a character at 11 px).
  const labelWidth = Math.max(360, Math.ceil(Math.max(0, ...rows.map((row) => row.label.length)) * 6.2) + 16);
  const plotWidth = 420;
  const barHeight = 11;
  const rowGap = 12;
  const top = 76;
  const rowHeight = present.length * barHeight + rowGap;
  const legendTop = top + rows.length * rowHeight + 14;
  const height = legendTop + present.length * 16 + 24;
  const width = labelWidth + plotWidth + 110;
  const x = (v: number) => labelWidth + (Math.min(v, CAP) / CAP) * plotWidth;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="20" font-size="14" font-weight="600">websockets.ts benchmarks: × ws + bufferutil in the same run (higher is better)</text>`,
    `<text x="10" y="36" fill="#555">${escape(`${results.meta.date.slice(0, 10)} · ${results.meta.command}`)}</text>`,
    `<text x="10" y="50" fill="#555">${escape(`medians of the per-repetition ratios; times and memory inverted (ws + bufferutil's value / this one); bars capped at ${CAP}×`)}</text>`,
  ];
  for (let t = 0; t <= CAP; t++) {
    out.push(`<line x1="${x(t)}" y1="${top - 6}" x2="${x(t)}" y2="${legendTop - 10}" stroke="${t === 1 ? '#000' : '#e2e8f0'}" stroke-width="${t === 1 ? 1.5 : 1}"/>`);
    out.push(`<text x="${x(t)}" y="${top - 9}" text-anchor="middle" fill="#555">${t}×</text>`);
  }
  rows.forEach((row, i) => {
    const y0 = top + i * rowHeight;
    out.push(`<text x="${labelWidth - 8}" y="${y0 + (present.length * barHeight) / 2 + 4}" text-anchor="end">${escape(row.label)}</text>`);
    row.bars.forEach((bar, j) => {
      const y = y0 + j * barHeight;
      if (bar.value === null) return;
      const w = Math.max(1, x(bar.value) - labelWidth);
      const text = bar.value > CAP ? `≥ ${CAP}× (${Number.isFinite(bar.value) ? bar.value.toFixed(1) : '∞'})` : `${bar.value.toFixed(2)}×`;
      out.push(`<rect x="${labelWidth}" y="${y}" width="${w.toFixed(1)}" height="${barHeight - 2}" fill="${bar.series.color}"/>`);
      out.push(`<text x="${(labelWidth + w + 4).toFixed(1)}" y="${y + barHeight - 3}" font-size="9" fill="#333">${text}</text>`);
    });
  });
  present.forEach((s, i) => {
    const y = legendTop + i * 16;
    out.push(`<rect x="${labelWidth}" y="${y}" width="12" height="10" fill="${s.color}"/>`);
    out.push(`<text x="${labelWidth + 18}" y="${y + 9}">${escape(s.label)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

if (basename(process.argv[1] ?? '') === 'chart.js') {
  const input = process.argv[2] ?? 'bench/results.json';
  const output = process.argv[3] ?? input.replace(/\.json$/, '.svg');
  writeFileSync(output, renderChart(JSON.parse(readFileSync(input, 'utf8')) as ResultsJson));
  console.log(`wrote ${output}`);
}
