/**
 * A self-contained SVG bar chart of one suite run: one bar per compared case, its
 * ratio against its baseline on a log scale, drawn from the 1× line (right: faster
 * than the baseline, left: slower). A case with a goal gets a tick at the goal.
 *
 * A suite with goals (bench/lib/goals.mjs) gets a second panel below: one bar per goal,
 * how far it is met on the same kind of log scale (right of the line: met, by that
 * factor; left: missed), labelled with the measured value and the target.
 */

import { formatGoalTarget, formatGoalValue, goalHeadroom } from './goals.mjs';
import { formatRatio } from './stats.mjs';

const WIDTH_PX = 960;
const LABEL_PX = 420;
const VALUE_PX = 90;
const ROW_PX = 22;
const TOP_PX = 40;
const BOTTOM_PX = 30;
const BAR_PX = 14;
/** Room left and right of the extreme ratios, as a factor on the log scale. */
const MARGIN_FACTOR = 1.5;

function escapeXml(text) {
  return String(text).replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** log10 scale mapping [lo, hi] onto the plot area. */
function logScale(lo, hi) {
  const x0 = LABEL_PX;
  const width = WIDTH_PX - LABEL_PX - VALUE_PX;
  const l0 = Math.log10(lo);
  const span = Math.log10(hi) - l0;
  return (v) => x0 + ((Math.log10(v) - l0) / span) * width;
}

function decadeTicks(lo, hi, x, height) {
  const out = [];
  for (let e = Math.ceil(Math.log10(lo)); e <= Math.floor(Math.log10(hi)); e++) {
    const v = 10 ** e;
    const px = x(v).toFixed(1);
    out.push(
      `<line x1="${px}" y1="${TOP_PX - 6}" x2="${px}" y2="${height - BOTTOM_PX}" stroke="#ddd"/>`,
    );
    out.push(
      `<text x="${px}" y="${height - BOTTOM_PX + 16}" text-anchor="middle" font-size="11">${Number(v.toPrecision(1))}×</text>`,
    );
  }
  return out;
}

function barRow(r, i, x) {
  const y = TOP_PX + i * ROW_PX;
  const x1 = x(1);
  const xr = x(r.ratio);
  const left = Math.min(x1, xr).toFixed(1);
  const w = Math.max(Math.abs(xr - x1), 1).toFixed(1);
  const fill =
    r.goal !== undefined && r.ratio < r.goal ? '#c0392b' : r.ratio >= 1 ? '#2e86c1' : '#7f8c8d';
  const row = [
    `<text x="${LABEL_PX - 8}" y="${y + BAR_PX - 3}" text-anchor="end" font-size="12">${escapeXml(r.name)}</text>`,
    `<rect x="${left}" y="${y}" width="${w}" height="${BAR_PX}" fill="${fill}"><title>${escapeXml(`${r.name} vs ${r.baseline}`)}</title></rect>`,
    `<text x="${WIDTH_PX - VALUE_PX + 6}" y="${y + BAR_PX - 3}" font-size="12">${formatRatio(r.ratio)}</text>`,
  ];
  if (r.goal !== undefined) {
    const g = x(r.goal).toFixed(1);
    row.push(
      `<line x1="${g}" y1="${y - 2}" x2="${g}" y2="${y + BAR_PX + 2}" stroke="#000" stroke-width="2"/>`,
    );
  }
  return row;
}

/** One goal's row: a bar from the met line to its headroom, green when met, red when not. */
function goalRow(g, headroom, y, x) {
  const x1 = x(1);
  const xr = x(headroom);
  const left = Math.min(x1, xr).toFixed(1);
  const w = Math.max(Math.abs(xr - x1), 1).toFixed(1);
  const fill = g.met ? '#27ae60' : '#c0392b';
  const text = `${g.label}: ${formatGoalValue(g, g.value)} (${formatGoalTarget(g)})`;
  return [
    `<text x="${LABEL_PX - 8}" y="${y + BAR_PX - 3}" text-anchor="end" font-size="12">${escapeXml(g.short ?? g.label)}</text>`,
    `<rect x="${left}" y="${y}" width="${w}" height="${BAR_PX}" fill="${fill}"><title>${escapeXml(`${g.case}${g.baseline === undefined ? '' : ` vs ${g.baseline}`}: ${text}`)}</title></rect>`,
    `<text x="${WIDTH_PX - VALUE_PX + 6}" y="${y + BAR_PX - 3}" font-size="12">${escapeXml(formatGoalValue(g, g.value))}</text>`,
  ];
}

/** The goals panel starting at `top`; returns its parts and height. */
function goalPanel(goals, top) {
  const shown = goals
    .map((g) => ({ g, headroom: goalHeadroom(g) }))
    .filter(({ headroom }) => headroom !== undefined && headroom > 0);
  if (shown.length === 0) return { parts: [], height: 0 };
  const values = shown.map(({ headroom }) => headroom).concat(1);
  const x = logScale(Math.min(...values) / MARGIN_FACTOR, Math.max(...values) * MARGIN_FACTOR);
  const rowsTop = top + TOP_PX;
  const height = TOP_PX + shown.length * ROW_PX + 10;
  const parts = [
    `<text x="10" y="${top + 20}" font-size="14" font-weight="bold">goals: measured against the goal (log scale; right of the line: met by that factor, left: missed)</text>`,
    ...shown.flatMap(({ g, headroom }, i) => goalRow(g, headroom, rowsTop + i * ROW_PX, x)),
    `<line x1="${x(1).toFixed(1)}" y1="${rowsTop - 6}" x2="${x(1).toFixed(1)}" y2="${top + height}" stroke="#333"/>`,
  ];
  return { parts, height };
}

/** The SVG document for `run` (an empty chart with a note when nothing was compared). */
export function renderSvg(run) {
  const compared = run.cases.filter((r) => r.ratio !== undefined && r.ratio > 0);
  const casesHeight = TOP_PX + Math.max(compared.length, 1) * ROW_PX + BOTTOM_PX;
  const goals = goalPanel(run.goals ?? [], casesHeight);
  const height = casesHeight + goals.height;
  const ratios = compared.flatMap((r) => [r.ratio, r.goal ?? 1]).concat(1);
  const lo = Math.min(...ratios) / MARGIN_FACTOR;
  const hi = Math.max(...ratios) * MARGIN_FACTOR;
  const x = logScale(lo, hi);
  const title = `${run.suite.name}: ratio against baseline (log scale), median of ${run.environment.rounds} rounds`;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH_PX}" height="${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
    ...decadeTicks(lo, hi, x, casesHeight),
    ...compared.flatMap((r, i) => barRow(r, i, x)),
    `<line x1="${x(1).toFixed(1)}" y1="${TOP_PX - 6}" x2="${x(1).toFixed(1)}" y2="${casesHeight - BOTTOM_PX}" stroke="#333"/>`,
  ];
  if (compared.length === 0) {
    parts.push(`<text x="${LABEL_PX}" y="${TOP_PX + 12}" font-size="12">no compared cases</text>`);
  }
  parts.push(...goals.parts);
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
