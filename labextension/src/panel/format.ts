/**
 * The words and numbers the agent panel prints, as pure functions (tested with the reducer).
 *
 * Kept apart from the view so that what a cost of `null` or a held call's arguments look
 * like is decided once, not at each place they are drawn.
 */

import { Limits, Usage } from './state';

const STATUS_WORDS: { [status: string]: string } = {
  idle: 'idle',
  running: 'running',
  awaiting_approval: 'awaiting approval',
  stopped: 'stopped',
  failed: 'failed',
  crashed: 'crashed',
  unknown: '…'
};

export function statusLabel(status: string): string {
  return STATUS_WORDS[status] ?? status;
}

export function count(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export function plural(n: number, word: string): string {
  return `${count(n)} ${word}${n === 1 ? '' : 's'}`;
}

/** The session's spend: unknown is never shown as $0. */
export function costText(usage: Usage): string {
  if (usage.cost === null) {
    return 'cost unknown (no price for this model)';
  }
  const spent = dollars(usage.cost);
  if (usage.unpricedCalls > 0) {
    return `${spent} + ${plural(usage.unpricedCalls, 'call')} without a known price`;
  }
  return spent;
}

export function tokensText(usage: Usage): string {
  const parts = `${count(usage.inputTokens)} in · ${count(usage.outputTokens)} out`;
  return `${plural(usage.totalTokens, 'token')} (${parts}) · ${plural(usage.modelCalls, 'model call')}`;
}

/** How much of a limit is used, from 0 to 1 (more past it); null: no limit, or unknown use. */
export function share(used: number | null, limit: number | null): number | null {
  if (used === null || limit === null) {
    return null;
  }
  return limit > 0 ? used / limit : used > 0 ? Infinity : 0;
}

function percent(part: number | null): string {
  if (part === null) {
    return '';
  }
  if (!Number.isFinite(part)) {
    return ' (over)';
  }
  return ` (${Math.floor(part * 100)}%)`;
}

function dollars(value: number): string {
  return `$${value.toFixed(value > 0 && value < 0.01 ? 4 : 2)}`;
}

/** The session's tokens against its budget. */
export function budgetText(usage: Usage, limits: Limits | null): string {
  const budget = limits?.tokenBudget ?? null;
  if (budget === null) {
    return 'Token budget: none';
  }
  return `Token budget: ${count(usage.totalTokens)} of ${count(budget)}${percent(share(usage.totalTokens, budget))}`;
}

/** The session's spend against its ceiling (an unknown spend is never taken for $0). */
export function ceilingText(usage: Usage, limits: Limits | null): string {
  const ceiling = limits?.costCeiling ?? null;
  if (ceiling === null) {
    return 'Cost ceiling: none';
  }
  if (usage.cost === null) {
    return `Cost ceiling: ${dollars(ceiling)}; the spend is unknown (no price for this model)`;
  }
  const text = `Cost ceiling: ${dollars(usage.cost)} of ${dollars(ceiling)}${percent(share(usage.cost, ceiling))}`;
  return usage.unpricedCalls > 0 ? `${text}; ${plural(usage.unpricedCalls, 'call')} not counted` : text;
}

export function callsText(limits: Limits | null): string {
  const most = limits?.maxModelCalls ?? null;
  return most === null ? '' : `Model calls: at most ${count(most)} per run`;
}

export function windowText(limits: Limits | null): string {
  const window = limits?.contextWindow ?? null;
  return window === null
    ? 'Context window: not known yet'
    : `Context window: ${plural(window, 'token')} (the history is trimmed to it)`;
}

export function sizeText(bytes: number | null): string {
  if (bytes === null) {
    return '';
  }
  const units = ['B', 'kB', 'MB', 'GB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** A held call's arguments as the panel prints them (JSON, indented). */
export function argumentsText(args: unknown): string {
  if (typeof args === 'string') {
    return args;
  }
  try {
    return JSON.stringify(args, null, 2) ?? '';
  } catch {
    return String(args);
  }
}

export function processStatusText(status: string, exitCode: number | null): string {
  const word = status.replace(/_/g, ' ');
  return exitCode === null ? word : `${word} (exit code ${exitCode})`;
}

/** The class suffix of one line of a unified diff: added, removed, a hunk header, or none. */
export function diffLineKind(line: string): 'add' | 'del' | 'hunk' | 'meta' | '' {
  if (line.startsWith('+++') || line.startsWith('---')) {
    return 'meta';
  }
  if (line.startsWith('@@')) {
    return 'hunk';
  }
  if (line.startsWith('+')) {
    return 'add';
  }
  if (line.startsWith('-')) {
    return 'del';
  }
  return '';
}
