/**
 * A run's card in the agent chat (application/vnd.agentspace.run+json): the run's status and,
 * while it runs, Stop. jupyterlab-chat 0.25 has no Stop of its own (its input toolbar offers
 * send, attach and cancel), so the server posts this card when a run starts and revises it when
 * the run ends (done with its token counts, stopped, paused for a decision, failed). Stop asks
 * the server to stop the session's run (`POST sessions/{id}/stop`): what the agent wrote stays.
 * DOM from text only, like the tool-call cards.
 */

import type { CardApi } from './card';
import { el } from './toolcall';

export const RUN_MIME = 'application/vnd.agentspace.run+json';

const LABELS: Record<string, string> = {
  running: 'working',
  paused: 'waiting for a decision',
  finished: 'done',
  stopped: 'stopped',
  failed: 'failed'
};

interface RunCard {
  session: string;
  run_id: string;
  status: string;
  input_tokens: number;
  output_tokens: number;
  message: string | null;
}

function normalise(raw: unknown): RunCard | null {
  const d = raw as Partial<RunCard> | null;
  if (!d || typeof d !== 'object' || typeof d.session !== 'string' || typeof d.status !== 'string') {
    return null;
  }
  return {
    session: d.session,
    run_id: String(d.run_id ?? ''),
    status: d.status,
    input_tokens: Number(d.input_tokens) || 0,
    output_tokens: Number(d.output_tokens) || 0,
    message: typeof d.message === 'string' ? d.message : null
  };
}

/** Draw (or redraw) the run card ``raw`` into ``node``. */
export function renderRun(node: HTMLElement, raw: unknown, api: CardApi): void {
  const run = normalise(raw);
  node.replaceChildren();
  node.classList.add('jp-agentspace-run');
  if (!run) {
    node.dataset.status = 'invalid';
    node.append(el('span', 'jp-agentspace-run-status', 'a run this version cannot show'));
    return;
  }
  node.dataset.status = run.status;
  node.append(el('span', 'jp-agentspace-run-status', LABELS[run.status] ?? run.status));
  if (run.input_tokens || run.output_tokens) {
    const tokens = `${run.input_tokens.toLocaleString()} tokens in, ${run.output_tokens.toLocaleString()} out`;
    node.append(el('span', 'jp-agentspace-run-usage', tokens));
  }
  if (run.message) {
    node.append(el('span', 'jp-agentspace-run-message', run.message));
  }
  if (run.status !== 'running') {
    return;
  }
  const stop = el('button', 'jp-agentspace-card-button jp-agentspace-run-stop', 'Stop');
  stop.type = 'button';
  stop.title = 'Stop the agent (what it wrote stays)';
  const error = el('span', 'jp-agentspace-run-error', '');
  stop.addEventListener('click', async event => {
    event.preventDefault();
    stop.disabled = true;
    stop.textContent = 'Stopping…';
    let failure: string | null = null;
    try {
      const reply = await api.post(`agentspace/api/sessions/${encodeURIComponent(run.session)}/stop`, {});
      if (!reply.ok) {
        failure = typeof reply.body?.message === 'string' ? reply.body.message : `HTTP ${reply.status}`;
      }
    } catch (e) {
      failure = e instanceof Error ? e.message : String(e);
    }
    if (failure) {
      stop.disabled = false;
      stop.textContent = 'Stop';
      error.textContent = failure;
    }
  });
  node.append(stop, error);
}
