/**
 * The agent panel's DOM: draws a `PanelState`, and turns clicks into `PanelActions`.
 *
 * Built once, then updated section by section: a section is redrawn only when the part of
 * the state it shows changed (the reducer returns new objects only for what changed), and
 * inputs (the model, a reason being typed) are never rebuilt under the user's cursor.
 * Class names are stable (`jp-agentspace-panel-*`): the browser tests find things by them.
 */

import { PanelActions } from './actions';
import { ApprovalsView } from './approvals';
import { button, cls, el, show } from './dom';
import {
  budgetText,
  callsText,
  ceilingText,
  costText,
  plural,
  share,
  statusLabel,
  tokensText,
  windowText
} from './format';
import { canResume, canStop, modelOptions, PanelState } from './state';
import { FilesView, PreviewsView, ProcessesView } from './workspace';

export class PanelView {
  private readonly empty = el('div', 'empty', 'Open a notebook to see its agent');
  private readonly offline = el('div', 'offline');
  private readonly body = el('div', 'body');
  private readonly notebook = el('div', 'notebook');
  private readonly error = el('div', 'error');
  private readonly errorText = el('span', 'error-text');
  private readonly status = el('span', 'status');
  private readonly reason = el('div', 'reason');
  private readonly model = el('input', 'model');
  private readonly modelList = el('datalist', 'models');
  private readonly modelSet: HTMLButtonElement;
  private readonly modelNote = el('span', 'model-note');
  private readonly stop: HTMLButtonElement;
  private readonly resume: HTMLButtonElement;
  private readonly queue = el('div', 'queue');
  private readonly warnings = el('ul', 'warnings');
  private readonly usage = el('div', 'usage');
  private readonly approvals: ApprovalsView;
  private readonly previews = new PreviewsView();
  private readonly processes: ProcessesView;
  private readonly files: FilesView;
  private last: PanelState | null = null;
  private shownModel = '';
  private shownOptions: string[] = [];
  private static lists = 0; // a datalist's id is the page's: one per panel

  constructor(
    readonly node: HTMLElement,
    private readonly actions: PanelActions
  ) {
    node.classList.add(cls(''));
    this.approvals = new ApprovalsView(actions);
    this.processes = new ProcessesView(actions);
    this.files = new FilesView(actions);
    this.modelSet = button('model-set', 'Set', () => this.submitModel());
    this.stop = button('stop', 'Stop', () => actions.stop());
    this.resume = button('resume', 'Resume', () => actions.resume());
    this.stop.title = 'Stop the run in flight (its partial text is kept)';
    this.resume.title = 'Continue after a stop, failure or crash, then the queue';

    this.model.type = 'text';
    this.modelList.id = `${cls('models')}-${++PanelView.lists}`;
    this.model.setAttribute('list', this.modelList.id); // suggestions; any model string goes
    this.model.autocomplete = 'off';
    this.model.spellcheck = false;
    this.model.setAttribute('aria-label', 'Model');
    this.model.placeholder = 'a litellm model string, e.g. openai/gpt-4o-mini';
    this.model.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        event.preventDefault();
        this.submitModel();
      } else if (event.key === 'Escape') {
        this.model.value = this.shownModel;
      }
    });
    this.model.addEventListener('input', () => this.syncModelButton());

    this.error.append(this.errorText, button('error-dismiss', '×', () => actions.dismissError()));

    const statusRow = el('div', 'status-row');
    statusRow.append(el('span', 'label', 'Status'), this.status, this.stop, this.resume);
    const modelRow = el('div', 'model-row');
    modelRow.append(el('label', 'label', 'Model'), this.model, this.modelList, this.modelSet);
    const session = el('div', 'session');
    session.append(statusRow, this.reason, modelRow, this.modelNote, this.queue, this.warnings);
    const usage = el('div', 'usage-section');
    usage.append(el('h3', 'heading', 'Usage'), this.usage);

    this.body.append(
      this.notebook,
      this.error,
      session,
      this.approvals.node,
      usage,
      this.previews.node,
      this.processes.node,
      this.files.node
    );
    node.append(this.empty, this.offline, this.body);
  }

  render(state: PanelState): void {
    const last = this.last;
    this.last = state;
    const none = state.notebook === null;
    show(this.empty, none);
    show(this.body, !none);
    this.offline.textContent =
      state.connection === 'offline' ? `agentspace server unreachable: ${state.offline}; retrying` : '';
    show(this.offline, state.connection === 'offline');
    this.node.classList.toggle(cls('is-offline'), state.connection === 'offline');
    if (none) {
      return;
    }
    this.notebook.textContent = state.notebook;
    this.notebook.title = state.sessionId ? `session ${state.sessionId}` : '';
    // a decision's error is shown on its call while the call is there, here once it is gone
    const onCall = state.pending.some(p => p.error !== null && p.error === state.error);
    this.errorText.textContent = state.error ?? '';
    show(this.error, state.error !== null && !onCall);
    this.renderSession(state);
    if (!last || last.pending !== state.pending || last.busy !== state.busy) {
      this.approvals.render(state);
    }
    if (!last || changed(last, state, ['usage', 'lastRun', 'limits'])) {
      this.renderUsage(state);
    }
    if (!last || last.previews !== state.previews) {
      this.previews.render(state);
    }
    const processes = ['processes', 'processesError', 'outputs', 'expandedProcesses', 'busy'];
    if (!last || changed(last, state, processes)) {
      this.processes.render(state);
    }
    if (!last || changed(last, state, ['folders', 'expandedFolders', 'sessionId'])) {
      this.files.render(state);
    }
  }

  private renderSession(state: PanelState): void {
    this.status.textContent = state.sessionId ? statusLabel(state.status) : 'connecting…';
    this.status.dataset.status = state.status;
    this.reason.textContent = state.reason ?? '';
    show(this.reason, Boolean(state.reason));
    const live = state.sessionId !== null && state.connection === 'live';
    show(this.stop, canStop(state));
    show(this.resume, canResume(state));
    this.stop.disabled = !live || Boolean(state.busy.stop);
    this.resume.disabled = !live || Boolean(state.busy.resume);

    // the field follows the session's model unless the user is editing it
    const editing = document.activeElement === this.model && this.model.value !== this.shownModel;
    if (!editing && !state.busy.model) {
      this.model.value = state.model;
    }
    this.shownModel = state.model;
    this.model.disabled = !live || Boolean(state.busy.model);
    this.modelNote.textContent = state.model && !state.ownModel ? "the server's default" : '';
    show(this.modelNote, Boolean(this.modelNote.textContent));
    this.syncModelButton();
    this.renderModels(state);

    const waiting = state.queued;
    this.queue.textContent = waiting ? `Queue: ${plural(waiting, 'message')} waiting` : 'Queue: empty';
    this.queue.dataset.queued = String(waiting);
    this.warnings.textContent = '';
    for (const warning of state.warnings) {
      this.warnings.append(el('li', 'warning', warning));
    }
    show(this.warnings, state.warnings.length > 0);
  }

  /** The datalist follows the server's models (its options are rebuilt only when they change). */
  private renderModels(state: PanelState): void {
    const options = modelOptions(state);
    this.model.title = state.modelsAbout;
    if (options.length === this.shownOptions.length && options.every((m, i) => m === this.shownOptions[i])) {
      return;
    }
    this.shownOptions = options;
    this.modelList.textContent = '';
    for (const model of options) {
      const option = el('option', '');
      option.value = model;
      this.modelList.append(option);
    }
  }

  private renderUsage(state: PanelState): void {
    this.usage.textContent = '';
    const u = state.usage;
    const limits = state.limits;
    this.usage.append(
      el('div', 'usage-tokens', `Tokens: ${tokensText(u)}`),
      el('div', 'usage-cost', `Cost: ${costText(u)}`)
    );
    if (state.lastRun) {
      const { inputTokens, outputTokens } = state.lastRun;
      this.usage.append(el('div', 'usage-run', `last run: ${plural(inputTokens + outputTokens, 'token')}`));
    }
    if (!limits) {
      return; // a server that gives none
    }
    this.usage.append(
      gauge('usage-budget', budgetText(u, limits), share(u.totalTokens, limits.tokenBudget)),
      gauge('usage-ceiling', ceilingText(u, limits), share(u.cost, limits.costCeiling))
    );
    const calls = callsText(limits);
    if (calls) {
      this.usage.append(el('div', 'usage-calls', calls));
    }
    this.usage.append(el('div', 'usage-window', windowText(limits)));
  }

  private syncModelButton(): void {
    const value = this.model.value.trim();
    this.modelSet.disabled = this.model.disabled || !value || value === this.shownModel;
  }

  private submitModel(): void {
    const value = this.model.value.trim();
    if (value && value !== this.shownModel && !this.model.disabled) {
      this.actions.setModel(value);
    }
  }
}

/** A line of usage against a limit, with a meter when there is one (`part` of it used). */
function gauge(suffix: string, text: string, part: number | null): HTMLElement {
  const line = el('div', suffix, text);
  if (part !== null) {
    const meter = el('meter', 'meter');
    meter.min = 0;
    meter.max = 1;
    meter.high = 0.8;
    meter.optimum = 0;
    meter.value = Math.min(part, 1);
    meter.setAttribute('aria-label', text);
    line.prepend(meter);
    line.classList.toggle(cls('is-near-limit'), part >= 0.8);
  }
  return line;
}

function changed(a: PanelState, b: PanelState, keys: string[]): boolean {
  return keys.some(k => (a as any)[k] !== (b as any)[k]);
}
