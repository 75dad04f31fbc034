/**
 * A tool-call card's data and its read-only parts (arguments, diff, result, decision, links).
 *
 * The server posts each agent tool call as a chat message whose mime_model carries the card
 * data below (version 1). These functions turn it into DOM without ever parsing a string as
 * HTML: every text from the card (the agent's arguments, a command's output, a diff) goes in
 * through textContent, so `<img onerror=...>` in a result is shown, not run. No JupyterLab
 * imports here, so the card renders (and is tested) in plain jsdom.
 */

export const TOOLCALL_MIME = 'application/vnd.agentspace.toolcall+json';

export type Status =
  | 'calling'
  | 'pending'
  | 'running'
  | 'done'
  | 'failed'
  | 'rejected'
  | 'cancelled';

const STATUSES: Status[] = ['calling', 'pending', 'running', 'done', 'failed', 'rejected', 'cancelled'];

/** What the badge says for each status. */
const STATUS_LABELS: Record<Status, string> = {
  calling: 'calling…',
  pending: 'waiting for approval',
  running: 'running',
  done: 'done',
  failed: 'failed',
  rejected: 'rejected',
  cancelled: 'cancelled'
};

export type Json = { [key: string]: any };

export interface Decision {
  decision: 'approve' | 'reject' | 'edit' | 'result';
  by?: string;
  /** How the chat names `by` (a display name; the notebook's kernel), set by the server. */
  by_name?: string;
  reason?: string;
  auto?: boolean;
  rule?: string;
  remember?: boolean;
  /** With `edit`, or a `result` run with edited arguments: the arguments that ran. */
  arguments?: Record<string, unknown>;
}

export interface CardLink {
  label: string;
  path: string;
}

export interface ToolCallCard {
  version: number;
  session: string;
  tool_call_id: string;
  tool: string;
  arguments: Json | null;
  arguments_text: string | null;
  preview: string | null;
  status: Status;
  result: string | null;
  is_error: boolean;
  decision: Decision | null;
  links: CardLink[];
  can_remember: boolean;
}

/** Tools whose `preview` (a unified diff) says what they would change. */
export const DIFF_TOOLS = ['write_file', 'edit_file', 'edit_cell', 'insert_cell', 'delete_cell'];

/** A result longer than this is collapsed into a <details>. */
export const RESULT_MAX_LINES = 15;
export const RESULT_MAX_CHARS = 1500;
const SUMMARY_LINES = 3;
const SUMMARY_LINE_CHARS = 160;

const str = (value: unknown): string | null => (typeof value === 'string' ? value : null);
const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The card from a message's mime data, every field checked (the data comes from a chat file
 * anyone in the chat can write): a JSON string is parsed; wrong types become their defaults.
 * Null when it is not a version-1 card at all.
 */
export function normalise(raw: unknown): ToolCallCard | null {
  if (typeof raw === 'string') {
    try {
      raw = JSON.parse(raw);
    } catch {
      return null;
    }
  }
  if (!isObject(raw) || raw.version !== 1) {
    return null;
  }
  const status = STATUSES.includes(raw.status) ? (raw.status as Status) : 'calling';
  const links = Array.isArray(raw.links)
    ? raw.links
        .filter((l: unknown) => isObject(l) && typeof l.path === 'string')
        .map((l: Json) => ({ label: str(l.label) ?? l.path, path: l.path }))
    : [];
  const decision = isObject(raw.decision) ? (raw.decision as Decision) : null;
  return {
    version: 1,
    session: str(raw.session) ?? '',
    tool_call_id: str(raw.tool_call_id) ?? '',
    tool: str(raw.tool) ?? '?',
    arguments: isObject(raw.arguments) ? raw.arguments : null,
    arguments_text: str(raw.arguments_text),
    preview: str(raw.preview),
    status,
    result: str(raw.result),
    is_error: raw.is_error === true,
    decision,
    links,
    can_remember: raw.can_remember === true
  };
}

/** An element with a class and, optionally, text (always through textContent). */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/** `base` and a server-relative `path` joined with one slash ("/" + "a/b" -> "/a/b"). */
export function joinUrl(base: string, path: string): string {
  return base.replace(/\/+$/, '') + '/' + path.replace(/^\/+/, '');
}

function codeBlock(text: string, className: string): HTMLElement {
  const pre = el('pre', `jp-agentspace-card-code ${className}`);
  pre.append(el('code', undefined, text));
  return pre;
}

const pretty = (value: unknown): string => JSON.stringify(value, null, 2);

/** The arguments not shown otherwise, as pretty JSON (none: null). */
function rest(args: Json, shown: string[]): HTMLElement | null {
  const others: Json = {};
  for (const [key, value] of Object.entries(args)) {
    if (!shown.includes(key)) {
      others[key] = value;
    }
  }
  return Object.keys(others).length
    ? codeBlock(pretty(others), 'jp-agentspace-card-args-rest')
    : null;
}

/** A unified diff, one span per line, classed by its first characters. */
export function diffView(diff: string): HTMLElement {
  const pre = el('pre', 'jp-agentspace-card-code jp-agentspace-card-diff');
  const lines = diff.replace(/\n$/, '').split('\n');
  for (const line of lines) {
    let kind = 'context';
    if (line.startsWith('+++') || line.startsWith('---')) {
      kind = 'file';
    } else if (line.startsWith('@@')) {
      kind = 'hunk';
    } else if (line.startsWith('+')) {
      kind = 'add';
    } else if (line.startsWith('-')) {
      kind = 'del';
    }
    pre.append(el('span', `jp-agentspace-card-diff-line jp-agentspace-card-diff-${kind}`, line + '\n'));
  }
  return pre;
}

/** What the call would do: a command, code, a diff, or its arguments as JSON. */
export function argumentsView(card: ToolCallCard): HTMLElement {
  const box = el('div', 'jp-agentspace-card-args');
  const args = card.arguments;
  if (card.preview !== null && (DIFF_TOOLS.includes(card.tool) || !args)) {
    box.append(diffView(card.preview));
  } else if (args && card.tool === 'shell' && typeof args.command === 'string') {
    box.append(codeBlock(args.command, 'jp-agentspace-card-command'));
    const more = rest(args, ['command']);
    if (more) {
      box.append(more);
    }
  } else if (args && card.tool === 'run_cell' && typeof args.code === 'string') {
    box.append(codeBlock(args.code, 'jp-agentspace-card-command'));
    const more = rest(args, ['code']);
    if (more) {
      box.append(more);
    }
  } else if (args && card.tool === 'run_cell' && typeof args.cell_id === 'string') {
    box.append(el('div', 'jp-agentspace-card-cell', `cell ${args.cell_id}`));
    const more = rest(args, ['cell_id']);
    if (more) {
      box.append(more);
    }
  } else if (args) {
    box.append(codeBlock(pretty(args), 'jp-agentspace-card-json'));
  } else if (card.arguments_text !== null) {
    box.append(codeBlock(card.arguments_text, 'jp-agentspace-card-args-text'));
  }
  return box;
}

/** The result in a <pre>; a long one in a <details> summarised by its first lines. */
export function resultView(card: ToolCallCard): HTMLElement | null {
  if (card.result === null) {
    return null;
  }
  const text = card.result;
  const error = card.is_error ? ' jp-mod-error' : '';
  const pre = el('pre', `jp-agentspace-card-result${error}`, text);
  if (card.is_error) {
    pre.dataset.error = 'true';
  }
  const lines = text.replace(/\n$/, '').split('\n');
  if (lines.length <= RESULT_MAX_LINES && text.length <= RESULT_MAX_CHARS) {
    return pre;
  }
  const details = el('details', `jp-agentspace-card-result-details${error}`);
  const summary = el('summary', 'jp-agentspace-card-result-summary');
  const head = lines
    .slice(0, SUMMARY_LINES)
    .map(l => (l.length > SUMMARY_LINE_CHARS ? l.slice(0, SUMMARY_LINE_CHARS) + '…' : l))
    .join('\n');
  summary.append(
    el('span', 'jp-agentspace-card-result-head', head),
    el('span', 'jp-agentspace-card-result-more', `… ${lines.length} lines, ${text.length} characters`)
  );
  details.append(summary, pre);
  return details;
}

/** "approved by alice", "rejected by bob: reason", "allowed by policy (rule)", ... */
export function decisionText(card: ToolCallCard): string | null {
  const d = card.decision;
  if (!d) {
    return null;
  }
  // the name the chat shows people by (the server adds it), else the identity
  const who = typeof d.by_name === 'string' && d.by_name ? d.by_name : d.by;
  const by = typeof who === 'string' && who ? who : 'someone';
  const rule = typeof d.rule === 'string' && d.rule ? ` (${d.rule})` : '';
  const reason = typeof d.reason === 'string' && d.reason ? `: ${d.reason}` : '';
  switch (d.decision) {
    case 'approve':
      if (d.auto) {
        return `allowed by policy${rule}`;
      }
      return `approved by ${by}` + (d.remember ? ` (always allow ${card.tool} in this session)` : '');
    case 'reject':
      return (d.auto ? `denied by policy${rule}` : `rejected by ${by}`) + reason;
    case 'edit':
      return `edited by ${by}` + reason;
    case 'result': // a kernel call: the kernel ran it (once approved, if it asked)
      if (typeof who !== 'string' || !who) {
        return 'run in the kernel';
      }
      return `approved by ${who}${d.arguments ? ' with edited arguments' : ''}, run in the kernel`;
    default:
      return null;
  }
}

/** The card's links, joined with the server's base URL, each opening a new tab. */
export function linksView(card: ToolCallCard, baseUrl: string): HTMLElement | null {
  if (!card.links.length) {
    return null;
  }
  const box = el('div', 'jp-agentspace-card-links');
  for (const link of card.links) {
    const a = el('a', 'jp-agentspace-card-link', link.label);
    a.href = joinUrl(baseUrl, link.path);
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    box.append(a);
  }
  return box;
}

/** The tool's name and the status badge. */
export function headerView(card: ToolCallCard): HTMLElement {
  const header = el('div', 'jp-agentspace-card-header');
  const tool = el('span', 'jp-agentspace-card-tool', card.tool);
  tool.title = card.tool_call_id;
  const badge = el('span', 'jp-agentspace-card-status', STATUS_LABELS[card.status]);
  badge.dataset.status = card.status;
  header.append(tool, badge);
  return header;
}
