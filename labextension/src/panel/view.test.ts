/**
 * The agent panel's DOM (view.ts, workspace.ts) in jsdom: what it draws from a state, and
 * which action a click asks for.
 */

import { describe, expect, it } from '@jest/globals';

import { PanelActions } from './actions';
import { initialState, PanelState, reduce } from './state';
import { SessionInfo } from './types';
import { PanelView } from './view';

function recorder(): { actions: PanelActions; calls: string[] } {
  const calls: string[] = [];
  const record =
    (name: string) =>
    (...args: unknown[]) => {
      calls.push([name, ...args.map(String)].join(' '));
    };
  const actions: PanelActions = {
    setModel: record('setModel'),
    stop: record('stop'),
    resume: record('resume'),
    decide: record('decide'),
    dismissError: record('dismissError'),
    toggleFolder: record('toggleFolder'),
    refreshFiles: record('refreshFiles'),
    fileUrl: path => `/files/${path}`,
    toggleProcess: record('toggleProcess'),
    stopProcess: record('stopProcess'),
    restartProcess: record('restartProcess'),
    refreshProcesses: record('refreshProcesses')
  };
  return { actions, calls };
}

const INFO: SessionInfo = {
  id: 's1',
  notebook: 'a.ipynb',
  model: null,
  effective_model: 'scripted/echo',
  status: 'idle',
  reason: null,
  usage: { input_tokens: 3000, output_tokens: 1000, total_tokens: 4000, cost: 0, model_calls: 2, unpriced_calls: 0 },
  queued: 0,
  pending_calls: [],
  last_seq: 9,
  limits: { token_budget: 5000, cost_ceiling: null, max_model_calls: 20, context_window: 128000 },
  previews: [{ port: 8000, url: '/agentspace/preview/s1/8000/' }]
};

function state(): PanelState {
  return [
    { type: 'info' as const, info: INFO },
    {
      type: 'models' as const,
      choices: { default: 'scripted/echo', models: ['scripted/echo', 'openai/gpt-4o-mini'], about: 'suggestions' }
    },
    {
      type: 'processes' as const,
      processes: [
        { name: 'web', command: 'serve', status: 'running', exit_code: null, started: 2, ended: null, log: 'l' },
        { name: 'job', command: 'make', status: 'exited', exit_code: 1, started: 1, ended: 3, log: 'm' }
      ]
    }
  ].reduce(reduce, initialState('a.ipynb'));
}

function find(node: HTMLElement, suffix: string): HTMLElement[] {
  return Array.from(node.querySelectorAll<HTMLElement>(`.jp-agentspace-panel-${suffix}`));
}

describe('the panel view', () => {
  it('offers Restart on every process, and Stop on a running one', () => {
    const { actions, calls } = recorder();
    const view = new PanelView(document.createElement('div'), actions);
    view.render(state());
    const cards = find(view.node, 'process');
    expect(cards.map(c => c.dataset.name)).toEqual(['job', 'web']);
    const [job, web] = cards;
    expect((job.querySelector('.jp-agentspace-panel-process-stop') as HTMLElement).hidden).toBe(true);
    expect((web.querySelector('.jp-agentspace-panel-process-stop') as HTMLElement).hidden).toBe(false);
    (job.querySelector('.jp-agentspace-panel-process-restart') as HTMLButtonElement).click();
    (web.querySelector('.jp-agentspace-panel-process-restart') as HTMLButtonElement).click();
    expect(calls).toEqual(['restartProcess job', 'restartProcess web']);
    const busy = reduce(state(), { type: 'requestStarted', key: 'process:job' });
    view.render(busy);
    expect((job.querySelector('.jp-agentspace-panel-process-restart') as HTMLButtonElement).disabled).toBe(true);
  });

  it('offers the models in a datalist, and takes any model string typed', () => {
    const { actions, calls } = recorder();
    const view = new PanelView(document.createElement('div'), actions);
    view.render(state());
    const input = find(view.node, 'model')[0] as HTMLInputElement;
    const list = view.node.querySelector('datalist') as HTMLDataListElement;
    expect(input.getAttribute('list')).toBe(list.id);
    expect(Array.from(list.options).map(o => o.value)).toEqual(['scripted/echo', 'openai/gpt-4o-mini']);
    expect(input.title).toBe('suggestions');
    input.value = 'ollama_chat/llama3';
    input.dispatchEvent(new Event('input'));
    (find(view.node, 'model-set')[0] as HTMLButtonElement).click();
    expect(calls).toEqual(['setModel ollama_chat/llama3']);
  });

  it('shows the usage against the limits, and the previews from the info', () => {
    const view = new PanelView(document.createElement('div'), recorder().actions);
    view.render(state());
    const budget = find(view.node, 'usage-budget')[0];
    expect(budget.textContent).toBe('Token budget: 4,000 of 5,000 (80%)');
    expect((budget.querySelector('meter') as HTMLMeterElement).value).toBeCloseTo(0.8);
    expect(budget.classList.contains('jp-agentspace-panel-is-near-limit')).toBe(true);
    const ceiling = find(view.node, 'usage-ceiling')[0];
    expect(ceiling.textContent).toBe('Cost ceiling: none');
    expect(ceiling.querySelector('meter')).toBeNull();
    expect(find(view.node, 'usage-calls')[0].textContent).toBe('Model calls: at most 20 per run');
    expect(find(view.node, 'usage-window')[0].textContent).toMatch(/^Context window: 128,000 tokens/);
    const link = find(view.node, 'preview')[0] as HTMLAnchorElement;
    expect(link.dataset.port).toBe('8000');
    expect(link.getAttribute('href')).toBe('/agentspace/preview/s1/8000/');
  });
});
