/**
 * The agent panel's pending approvals: one card per held tool call, decidable here.
 *
 * A card shows what the call would change (its diff) or else its arguments, and offers
 * Approve, Reject with a reason, and Always allow (approve, and allow the tool for the rest
 * of the session). A call the notebook's kernel runs (`kernel_tool`), once approved here, is
 * run by the server in the notebook's kernel (server/kernelcalls.py); `run_cell` always asks,
 * so it has no Always allow. Cards are kept between renders so that a reason being typed is
 * not lost when an event arrives.
 */

import { PanelActions } from './actions';
import { button, cls, el, Keyed, show } from './dom';
import { argumentsText, diffLineKind } from './format';
import { decideKey, PanelState, PendingCall } from './state';

interface Card extends HTMLDivElement {
  parts: {
    tool: HTMLElement;
    message: HTMLElement;
    body: HTMLPreElement;
    approve: HTMLButtonElement;
    always: HTMLButtonElement;
    reason: HTMLInputElement;
    reject: HTMLButtonElement;
    error: HTMLElement;
    shown: string;
  };
}

export class ApprovalsView {
  readonly node = el('div', 'pending');
  private readonly empty = el('div', 'pending-none', 'No tool call is waiting for a decision.');
  private readonly list = el('div', 'calls');
  private readonly cards: Keyed<PendingCall, Card>;

  constructor(private readonly actions: PanelActions) {
    this.node.append(el('h3', 'heading', 'Approvals'), this.empty, this.list);
    this.cards = new Keyed(
      this.list,
      call => call.toolCallId,
      call => this.card(call),
      (card, call) => this.update(card, call)
    );
  }

  render(state: PanelState): void {
    show(this.empty, state.pending.length === 0);
    this.cards.render(state.pending);
    for (const card of Array.from(this.list.children)) {
      const id = (card as HTMLElement).dataset.toolCallId ?? '';
      const busy = Boolean(state.busy[decideKey(id)]);
      const parts = (card as Card).parts;
      for (const control of [parts.approve, parts.always, parts.reject, parts.reason]) {
        control.disabled = busy;
      }
    }
  }

  private card(call: PendingCall): Card {
    const card = el('div', 'call') as Card;
    card.dataset.toolCallId = call.toolCallId;
    const id = call.toolCallId;
    const reason = el('input', 'reason-input');
    reason.type = 'text';
    reason.placeholder = 'Reason for rejecting (optional)';
    reason.setAttribute('aria-label', 'Reason for rejecting');
    const reject = () => {
      const text = reason.value.trim();
      this.actions.decide(id, 'reject', text ? { reason: text } : {});
    };
    reason.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        event.preventDefault();
        reject();
      }
    });
    const parts: Card['parts'] = {
      tool: el('span', 'call-tool'),
      message: el('div', 'call-message'),
      body: el('pre', 'call-body'),
      approve: button('approve', 'Approve', () => this.actions.decide(id, 'approve')),
      always: button('always', 'Always allow', () =>
        this.actions.decide(id, 'approve', { remember: true })
      ),
      reason,
      reject: button('reject', 'Reject', reject),
      error: el('div', 'call-error'),
      shown: ''
    };
    parts.always.title = `Approve, and allow ${call.tool} without asking for the rest of this session`;
    const actions = el('div', 'call-actions');
    actions.append(parts.approve, parts.always, parts.reason, parts.reject);
    card.append(parts.tool, parts.message, parts.body, actions, parts.error);
    card.parts = parts;
    return card;
  }

  private update(card: Card, call: PendingCall): void {
    const { parts } = card;
    parts.tool.textContent = call.tool;
    parts.message.textContent = call.message;
    const kernel = call.reason === 'kernel_tool';
    card.classList.toggle(cls('call-kernel'), kernel);
    // approved here, a kernel's call runs in the notebook's kernel; run_cell always asks
    show(parts.approve, true);
    show(parts.always, !(kernel && call.tool === 'run_cell'));
    const body = call.preview ?? argumentsText(call.arguments);
    if (parts.shown !== body) {
      parts.shown = body;
      fillBody(parts.body, call.preview, body);
    }
    parts.error.textContent = call.error ?? '';
    show(parts.error, Boolean(call.error));
  }
}

/** A diff line by line (each line's kind a class), or the arguments as they are. */
function fillBody(pre: HTMLPreElement, diff: string | null, text: string): void {
  pre.textContent = '';
  pre.classList.toggle(cls('diff'), diff !== null);
  if (diff === null) {
    pre.textContent = text;
    return;
  }
  for (const line of diff.split('\n')) {
    const kind = diffLineKind(line);
    const span = el('span', kind ? `diff-${kind}` : '', line + '\n');
    pre.append(span);
  }
}
