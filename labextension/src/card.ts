/**
 * The tool-call card: renderCard(node, data, api) draws one call (toolcall.ts's parts) and,
 * while it waits for approval, the buttons that decide it; while it runs, Stop.
 *
 * The card never changes its own status: a decision is posted to the server, the server
 * updates the chat message, and the card is rendered again with the new data. jupyterlab-chat
 * makes a new renderer (a new node) for each update of a message, so what the user is doing
 * on a pending card (an open reject or edit form and its typed text, a request running, the
 * last error) lives in a map keyed by session and call, not in the node; it is forgotten
 * once the call is no longer pending or running. Requests go through the injected
 * CardApi.post, so this module needs no JupyterLab and is tested in jsdom.
 */

import {
  Json,
  ToolCallCard,
  argumentsView,
  decisionText,
  el,
  headerView,
  linksView,
  normalise,
  resultView
} from './toolcall';

/** A response: its status and its JSON body (null when it had none or not JSON). */
export interface Reply {
  ok: boolean;
  status: number;
  body: any;
}

export interface CardApi {
  /** The server's base URL, for the card's links. */
  baseUrl: string;
  /** POST `body` as JSON to `path` (relative to the base URL, e.g. "agentspace/api/..."). */
  post(path: string, body: Json): Promise<Reply>;
}

type Form = 'reject' | 'edit' | null;

/** What the user is doing on one call's card (see the module doc). */
interface CardState {
  status: string;
  form: Form;
  reason: string;
  editText: string | null; // null until the edit form is first opened
  editError: string | null;
  busy: boolean; // a request runs
  sent: string | null; // the server took it (what to say meanwhile): wait for the message's update
  closed: boolean; // decided elsewhere (409)
  error: string | null;
  view: { node: HTMLElement; data: ToolCallCard; api: CardApi } | null;
}

const states = new Map<string, CardState>();

/** Forget every card's state (for tests). */
export function forgetCards(): void {
  states.clear();
}

const keyOf = (card: ToolCallCard): string => `${card.session}\n${card.tool_call_id}`;
const LIVE = ['pending', 'running', 'calling'];

function stateFor(card: ToolCallCard): CardState | null {
  const key = keyOf(card);
  if (!LIVE.includes(card.status)) {
    states.delete(key);
    return null;
  }
  let state = states.get(key);
  if (!state || state.status !== card.status) {
    state = {
      status: card.status,
      form: null,
      reason: '',
      editText: null,
      editError: null,
      busy: false,
      sent: null,
      closed: false,
      error: null,
      view: null
    };
    states.set(key, state);
  }
  return state;
}

const sessionPath = (card: ToolCallCard): string =>
  `agentspace/api/sessions/${encodeURIComponent(card.session)}`;

function rerender(state: CardState): void {
  if (state.view) {
    const { node, data, api } = state.view;
    renderCard(node, data, api);
  }
}

/** The reply's error as a line to show; a 409 with a winner says who decided. */
function replyError(reply: Reply): { text: string; decided: boolean } {
  const body = reply.body && typeof reply.body === 'object' ? reply.body : {};
  if (reply.status === 409 && typeof body.decided_by === 'string') {
    const how = typeof body.decision === 'string' ? ` (${body.decision})` : '';
    return { text: `already decided by ${body.decided_by}${how}`, decided: true };
  }
  const message = typeof body.message === 'string' ? body.message : `HTTP ${reply.status}`;
  return { text: message, decided: false };
}

/** Post `body` to `path` for the call, with the buttons disabled while it runs. */
/**
 * Whether the card is drawn in a notebook's output rather than in a chat. A notebook may carry a
 * card (this renderer draws the mime type wherever it is), and a crafted one could show other
 * arguments than the call's: a call is decided only from its chat, where the server wrote it.
 */
export function inNotebook(node: HTMLElement): boolean {
  return node.closest('.jp-Notebook') !== null;
}

async function send(state: CardState, path: string, body: Json, note: string): Promise<void> {
  if (!state.view || state.busy || state.sent || state.closed) {
    return;
  }
  if (inNotebook(state.view.node)) {
    state.error = "a card in a notebook's output decides nothing: decide the call in the notebook's agent chat";
    rerender(state);
    return;
  }
  const { api: cardApi } = state.view;
  const key = keyOf(state.view.data);
  state.busy = true;
  state.error = null;
  rerender(state);
  let reply: Reply | null = null;
  let failure: string | null = null;
  try {
    reply = await cardApi.post(path, body);
  } catch (error) {
    failure = `the request failed: ${error instanceof Error ? error.message : String(error)}`;
  }
  if (states.get(key) !== state) {
    return; // the card moved on (a new status) while the request ran
  }
  state.busy = false;
  if (reply && reply.ok) {
    state.sent = note;
    state.form = null;
  } else if (reply) {
    const { text, decided } = replyError(reply);
    state.error = text;
    state.closed = decided;
    if (decided) {
      state.form = null;
    }
  } else {
    state.error = failure;
  }
  rerender(state);
}

function decide(state: CardState, card: ToolCallCard, body: Json): void {
  const path = `${sessionPath(card)}/approvals/${encodeURIComponent(card.tool_call_id)}`;
  void send(state, path, body, 'Sent; waiting for the agent…');
}

function button(label: string, className: string, disabled: boolean, onClick: () => void): HTMLButtonElement {
  const b = el('button', `jp-agentspace-card-button ${className}`, label);
  b.type = 'button';
  b.disabled = disabled;
  b.addEventListener('click', event => {
    event.preventDefault();
    onClick();
  });
  return b;
}

function openForm(state: CardState, form: Form): void {
  state.form = state.form === form ? null : form;
  rerender(state);
  if (state.form) {
    const input = state.form === 'reject' ? 'reason' : 'edit-text';
    state.view?.node.querySelector<HTMLElement>(`.jp-agentspace-card-${input}`)?.focus();
  }
}

function rejectForm(state: CardState, card: ToolCallCard, disabled: boolean): HTMLElement {
  const form = el('div', 'jp-agentspace-card-form jp-agentspace-card-reject-form');
  const input = el('input', 'jp-agentspace-card-reason');
  input.type = 'text';
  input.placeholder = 'Why? (the agent reads this; optional)';
  input.value = state.reason;
  input.disabled = disabled;
  input.addEventListener('input', () => (state.reason = input.value));
  const confirm = () => {
    const reason = state.reason.trim();
    decide(state, card, reason ? { decision: 'reject', reason } : { decision: 'reject' });
  };
  input.addEventListener('keydown', event => {
    if (event.key === 'Enter') {
      event.preventDefault();
      confirm();
    } else if (event.key === 'Escape') {
      openForm(state, null);
    }
  });
  form.append(
    input,
    button('Reject', 'jp-agentspace-card-reject-confirm jp-mod-reject', disabled, confirm),
    button('Cancel', 'jp-agentspace-card-cancel', disabled, () => openForm(state, null))
  );
  return form;
}

/** The edited arguments: a JSON object, or the reason they are not. */
export function parseArguments(text: string): { value: Json } | { error: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { error: `not valid JSON: ${error instanceof Error ? error.message : String(error)}` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { error: 'the arguments must be a JSON object ({...})' };
  }
  return { value: value as Json };
}

function editForm(state: CardState, card: ToolCallCard, disabled: boolean): HTMLElement {
  const form = el('div', 'jp-agentspace-card-form jp-agentspace-card-edit-form');
  if (state.editText === null) {
    state.editText = card.arguments
      ? JSON.stringify(card.arguments, null, 2)
      : card.arguments_text ?? '{}';
  }
  const text = el('textarea', 'jp-agentspace-card-edit-text');
  text.value = state.editText;
  text.rows = Math.min(20, Math.max(4, state.editText.split('\n').length + 1));
  text.spellcheck = false;
  text.disabled = disabled;
  text.addEventListener('input', () => (state.editText = text.value));
  const submit = () => {
    const parsed = parseArguments(state.editText ?? '');
    if ('error' in parsed) {
      state.editError = parsed.error;
      rerender(state);
      state.view?.node.querySelector<HTMLElement>('.jp-agentspace-card-edit-text')?.focus();
      return;
    }
    state.editError = null;
    decide(state, card, { decision: 'edit', arguments: parsed.value });
  };
  text.addEventListener('keydown', event => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      submit();
    } else if (event.key === 'Escape') {
      openForm(state, null);
    }
  });
  form.append(text);
  if (state.editError) {
    const error = el('div', 'jp-agentspace-card-edit-error', state.editError);
    error.setAttribute('role', 'alert');
    form.append(error);
  }
  const row = el('div', 'jp-agentspace-card-form-buttons');
  row.append(
    button('Run with these arguments', 'jp-agentspace-card-edit-submit jp-mod-accept', disabled, submit),
    button('Cancel', 'jp-agentspace-card-cancel', disabled, () => openForm(state, null))
  );
  form.append(row);
  return form;
}

function pendingControls(state: CardState, card: ToolCallCard): HTMLElement {
  const box = el('div', 'jp-agentspace-card-controls');
  const disabled = state.busy || state.sent !== null || state.closed;
  const row = el('div', 'jp-agentspace-card-buttons');
  row.append(
    button('Approve', 'jp-agentspace-card-approve jp-mod-accept', disabled, () =>
      decide(state, card, { decision: 'approve' })
    ),
    button('Reject', 'jp-agentspace-card-reject jp-mod-reject', disabled, () => openForm(state, 'reject')),
    button('Edit', 'jp-agentspace-card-edit', disabled, () => openForm(state, 'edit'))
  );
  if (card.can_remember) {
    row.append(
      button(`Always allow ${card.tool} in this session`, 'jp-agentspace-card-remember', disabled, () =>
        decide(state, card, { decision: 'approve', remember: true })
      )
    );
  }
  box.append(row);
  if (state.form === 'reject') {
    box.append(rejectForm(state, card, disabled));
  } else if (state.form === 'edit') {
    box.append(editForm(state, card, disabled));
  }
  return box;
}

function runningControls(state: CardState, card: ToolCallCard): HTMLElement {
  const box = el('div', 'jp-agentspace-card-controls');
  box.append(
    button('Stop', 'jp-agentspace-card-stop', state.busy || state.sent !== null, () =>
      void send(state, `${sessionPath(card)}/stop`, {}, 'Stopping…')
    )
  );
  return box;
}

/** The focused input's class and selection, to put back after the content is rebuilt. */
function captureFocus(node: HTMLElement): { cls: string; start: number | null; end: number | null } | null {
  const active = node.ownerDocument.activeElement;
  if (
    !(active instanceof HTMLInputElement || active instanceof HTMLTextAreaElement) ||
    !node.contains(active)
  ) {
    return null;
  }
  return { cls: active.classList[0], start: active.selectionStart, end: active.selectionEnd };
}

function restoreFocus(node: HTMLElement, focus: ReturnType<typeof captureFocus>): void {
  if (!focus) {
    return;
  }
  const input = node.querySelector<HTMLInputElement | HTMLTextAreaElement>(`.${focus.cls}`);
  if (input && !input.disabled) {
    input.focus();
    if (focus.start !== null && focus.end !== null) {
      input.setSelectionRange(focus.start, focus.end);
    }
  }
}

/**
 * Draw the card for `raw` (the message's mime data) into `node`, replacing what was there.
 * Idempotent: render again with new data at any time.
 */
export function renderCard(node: HTMLElement, raw: unknown, cardApi: CardApi): void {
  const card = normalise(raw);
  const focus = captureFocus(node);
  const wasOpen = node.querySelector('details.jp-agentspace-card-result-details')?.hasAttribute('open');
  node.replaceChildren();
  node.classList.add('jp-agentspace-card');
  if (!card) {
    node.dataset.status = 'invalid';
    node.append(el('div', 'jp-agentspace-card-invalid', 'This tool call card is not one this version of agentspace can show.'));
    return;
  }
  node.dataset.status = card.status;
  node.dataset.tool = card.tool;
  node.append(headerView(card), argumentsView(card));
  const state = stateFor(card);
  if (state) {
    state.view = { node, data: card, api: cardApi };
  }
  if (state && card.status === 'pending' && !card.decision) {
    node.append(pendingControls(state, card));
  } else if (state && (card.status === 'running' || card.status === 'calling')) {
    node.append(runningControls(state, card));
  }
  if (state?.error) {
    const error = el('div', 'jp-agentspace-card-error', state.error);
    error.setAttribute('role', 'alert');
    node.append(error);
  } else if (state?.sent) {
    node.append(el('div', 'jp-agentspace-card-note', state.sent));
  }
  const decision = decisionText(card);
  if (decision) {
    node.append(el('div', 'jp-agentspace-card-decision', decision));
  }
  const result = resultView(card);
  if (result) {
    if (wasOpen && result instanceof HTMLDetailsElement) {
      result.open = true;
    }
    node.append(result);
  }
  const links = linksView(card, cardApi.baseUrl);
  if (links) {
    node.append(links);
  }
  restoreFocus(node, focus);
}
