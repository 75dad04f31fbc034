/** The run card: its status, and Stop while the run goes. */

import type { CardApi, Reply } from './card';
import { renderRun } from './runcard';

function api(reply: Reply): CardApi & { posts: string[] } {
  const posts: string[] = [];
  return {
    baseUrl: '/',
    posts,
    post: async path => {
      posts.push(path);
      return reply;
    }
  };
}

const run = (extra: object = {}) => ({
  version: 1, session: 's 1', run_id: 'run_1', status: 'running',
  input_tokens: 0, output_tokens: 0, message: null, ...extra
});

describe('the run card', () => {
  it('offers Stop while the run goes, and stops the session', async () => {
    const node = document.createElement('div');
    const a = api({ ok: true, status: 200, body: { status: 'stopped' } });
    renderRun(node, run(), a);
    expect(node.dataset.status).toBe('running');
    (node.querySelector('.jp-agentspace-run-stop') as HTMLButtonElement).click();
    await new Promise(r => setTimeout(r, 0));
    expect(a.posts).toEqual(['agentspace/api/sessions/s%201/stop']);
  });

  it('says why a stop failed, and lets it be tried again', async () => {
    const node = document.createElement('div');
    renderRun(node, run(), api({ ok: false, status: 404, body: { message: 'No session' } }));
    const stop = node.querySelector('.jp-agentspace-run-stop') as HTMLButtonElement;
    stop.click();
    await new Promise(r => setTimeout(r, 0));
    expect(node.querySelector('.jp-agentspace-run-error')?.textContent).toBe('No session');
    expect(stop.disabled).toBe(false);
  });

  it('shows how a run ended, with no Stop, and its data only as text', () => {
    const node = document.createElement('div');
    renderRun(node, run({ status: 'finished', input_tokens: 1200, output_tokens: 3, message: '<b>x</b>' }), api({ ok: true, status: 200, body: {} }));
    expect(node.querySelector('.jp-agentspace-run-stop')).toBeNull();
    expect(node.textContent).toContain('done');
    expect(node.textContent).toContain('1,200 tokens in, 3 out');
    expect(node.querySelector('b')).toBeNull();
  });
});
