/**
 * The tool-call card in jsdom: what each status shows, the parts (diff, long results, links,
 * decisions), that no data is ever parsed as HTML, and what the buttons post.
 */

import { CardApi, Reply, forgetCards, renderCard } from './card';
import { Json, Status, ToolCallCard } from './toolcall';

const STATUSES: Status[] = ['calling', 'pending', 'running', 'done', 'failed', 'rejected', 'cancelled'];

function card(extra: Partial<ToolCallCard> = {}): ToolCallCard {
  return {
    version: 1,
    session: 's1',
    tool_call_id: 'call_1',
    tool: 'shell',
    arguments: { command: 'ls -la' },
    arguments_text: null,
    preview: null,
    status: 'pending',
    result: null,
    is_error: false,
    decision: null,
    links: [],
    can_remember: true,
    ...extra
  };
}

type Call = { path: string; body: Json; resolve: (reply: Reply) => void; reject: (e: Error) => void };

/** An api whose posts wait until the test answers them. */
function fakeApi(): CardApi & { calls: Call[] } {
  const calls: Call[] = [];
  return {
    baseUrl: 'http://localhost:8888/base/',
    calls,
    post: (path, body) =>
      new Promise<Reply>((resolve, reject) => {
        calls.push({ path, body, resolve, reject });
      })
  };
}

const flush = () => new Promise(resolve => setTimeout(resolve, 0));

function render(data: unknown, api: CardApi = fakeApi(), node?: HTMLElement): HTMLElement {
  const target = node ?? document.createElement('div');
  if (!target.isConnected) {
    document.body.append(target);
  }
  renderCard(target, data, api);
  return target;
}

const q = (node: HTMLElement, cls: string) => node.querySelector<HTMLElement>(`.jp-agentspace-card-${cls}`);
const click = (node: HTMLElement, cls: string) => {
  const b = q(node, cls) as HTMLButtonElement | null;
  if (!b) {
    throw new Error(`no .jp-agentspace-card-${cls}`);
  }
  b.click();
};
const type = (input: HTMLInputElement | HTMLTextAreaElement, text: string) => {
  input.value = text;
  input.dispatchEvent(new Event('input'));
};

beforeEach(() => {
  forgetCards();
  document.body.replaceChildren();
});

describe('statuses', () => {
  test.each(STATUSES)('%s: data-status, badge, and buttons only while pending', status => {
    const node = render(card({ status }));
    expect(node.classList.contains('jp-agentspace-card')).toBe(true);
    expect(node.dataset.status).toBe(status);
    expect(q(node, 'status')?.dataset.status).toBe(status);
    expect(q(node, 'tool')?.textContent).toBe('shell');
    const buttons = ['approve', 'reject', 'edit', 'remember'].map(c => q(node, c) !== null);
    expect(buttons).toEqual(Array(4).fill(status === 'pending'));
    expect(q(node, 'stop') !== null).toBe(status === 'running' || status === 'calling');
  });

  test('a decided card has no buttons, even if it still says pending', () => {
    for (const status of ['pending', 'running', 'done', 'rejected'] as Status[]) {
      const node = render(card({ status, decision: { decision: 'approve', by: 'alice' } }));
      expect(node.querySelector('.jp-agentspace-card-buttons')).toBeNull();
      expect(node.querySelector('button:not(.jp-agentspace-card-stop)')).toBeNull();
    }
  });

  test('the remember button only when can_remember, naming the tool', () => {
    expect(q(render(card({ can_remember: false })), 'remember')).toBeNull();
    expect(q(render(card({ tool_call_id: 'c2' })), 'remember')?.textContent).toBe(
      'Always allow shell in this session'
    );
  });

  test('data that is not a version-1 card says so', () => {
    for (const data of [null, 'not json', { version: 2 }, [1]]) {
      const node = render(data);
      expect(node.dataset.status).toBe('invalid');
      expect(node.querySelector('button')).toBeNull();
    }
  });

  test('a JSON string is parsed', () => {
    expect(render(JSON.stringify(card({ status: 'done' }))).dataset.status).toBe('done');
  });
});

describe('arguments', () => {
  test('shell: the command as a code block, other arguments as JSON', () => {
    const node = render(card({ arguments: { command: 'make test', background: true } }));
    expect(node.querySelector('pre.jp-agentspace-card-command code')?.textContent).toBe('make test');
    expect(JSON.parse(q(node, 'args-rest')!.textContent!)).toEqual({ background: true });
  });

  test('run_cell: the code, or the cell', () => {
    const code = render(card({ tool: 'run_cell', arguments: { code: 'x = 1' } }));
    expect(q(code, 'command')?.textContent).toBe('x = 1');
    const cell = render(card({ tool: 'run_cell', tool_call_id: 'c2', arguments: { cell_id: 'ab12' } }));
    expect(q(cell, 'cell')?.textContent).toBe('cell ab12');
  });

  test('another tool: pretty JSON', () => {
    const node = render(card({ tool: 'read_file', arguments: { path: 'a.txt' } }));
    expect(q(node, 'json')?.textContent).toBe('{\n  "path": "a.txt"\n}');
  });

  test('streaming: the raw argument text', () => {
    const node = render(card({ status: 'calling', arguments: null, arguments_text: '{"comm' }));
    expect(q(node, 'args-text')?.textContent).toBe('{"comm');
  });

  test('write_file: the preview diff, lines coloured by kind', () => {
    const preview = '--- a/x.py\n+++ b/x.py\n@@ -1,2 +1,2 @@\n keep\n-old\n+new\n';
    const node = render(card({ tool: 'write_file', arguments: { path: 'x.py', content: 'new' }, preview }));
    const lines = Array.from(node.querySelectorAll('.jp-agentspace-card-diff-line'));
    const kinds = lines.map(l => Array.from(l.classList).find(c => c !== 'jp-agentspace-card-diff-line'));
    expect(kinds).toEqual([
      'jp-agentspace-card-diff-file',
      'jp-agentspace-card-diff-file',
      'jp-agentspace-card-diff-hunk',
      'jp-agentspace-card-diff-context',
      'jp-agentspace-card-diff-del',
      'jp-agentspace-card-diff-add'
    ]);
    expect(lines.map(l => l.textContent)).toEqual(preview.split('\n').slice(0, 6).map(l => l + '\n'));
    expect(q(node, 'json')).toBeNull();
  });
});

describe('result', () => {
  test('a short result in a <pre>, an error marked', () => {
    const ok = render(card({ status: 'done', result: 'hello' }));
    expect(q(ok, 'result')?.tagName).toBe('PRE');
    expect(q(ok, 'result')?.textContent).toBe('hello');
    expect(ok.querySelector('details')).toBeNull();
    const failed = render(card({ status: 'failed', tool_call_id: 'c2', result: 'boom', is_error: true }));
    expect(q(failed, 'result')?.classList.contains('jp-mod-error')).toBe(true);
    expect(q(failed, 'result')?.dataset.error).toBe('true');
  });

  test.each([
    ['many lines', Array.from({ length: 40 }, (_, i) => `line ${i}`).join('\n')],
    ['many characters', 'x'.repeat(2000)]
  ])('a long result (%s) is collapsed, summarised by its first lines', (_, result) => {
    const node = render(card({ status: 'done', result }));
    const details = node.querySelector('details.jp-agentspace-card-result-details') as HTMLDetailsElement;
    expect(details).not.toBeNull();
    expect(details.open).toBe(false);
    expect(details.querySelector('pre.jp-agentspace-card-result')?.textContent).toBe(result);
    const summary = details.querySelector('summary')!.textContent!;
    expect(summary.startsWith(result.slice(0, 20))).toBe(true);
    expect(summary.length).toBeLessThan(400);
  });

  test('15 lines are not collapsed', () => {
    const result = Array.from({ length: 15 }, (_, i) => `line ${i}`).join('\n');
    expect(render(card({ status: 'done', result })).querySelector('details')).toBeNull();
  });
});

describe('decision and links', () => {
  test.each([
    [{ decision: 'approve', by: 'alice' }, 'approved by alice'],
    [{ decision: 'approve', by: 'alice', remember: true }, 'approved by alice (always allow shell in this session)'],
    [{ decision: 'reject', by: 'bob', reason: 'too risky' }, 'rejected by bob: too risky'],
    [{ decision: 'reject', by: 'bob' }, 'rejected by bob'],
    [{ decision: 'edit', by: 'carol' }, 'edited by carol'],
    [{ decision: 'approve', by: 'server', auto: true, rule: 'server: shell' }, 'allowed by policy (server: shell)'],
    [{ decision: 'result', by: 'kernel' }, 'approved by kernel, run in the kernel'],
    [{ decision: 'result' }, 'run in the kernel']
  ])('%j -> %s', (decision, text) => {
    const node = render(card({ status: 'done', decision: decision as any }));
    expect(q(node, 'decision')?.textContent).toBe(text);
  });

  test('links join the base URL and open a new tab', () => {
    const node = render(
      card({
        status: 'running',
        links: [
          { label: 'output of web', path: 'agentspace/api/sessions/s1/processes/web/output' },
          { label: 'preview :8000', path: '/agentspace/preview/s1/8000/' }
        ]
      })
    );
    const links = Array.from(node.querySelectorAll('a.jp-agentspace-card-link')) as HTMLAnchorElement[];
    expect(links.map(a => a.getAttribute('href'))).toEqual([
      'http://localhost:8888/base/agentspace/api/sessions/s1/processes/web/output',
      'http://localhost:8888/base/agentspace/preview/s1/8000/'
    ]);
    expect(links.map(a => a.textContent)).toEqual(['output of web', 'preview :8000']);
    for (const a of links) {
      expect(a.target).toBe('_blank');
      expect(a.rel).toContain('noopener');
    }
  });
});

describe('no HTML from data', () => {
  const evil = '<img src=x onerror="window.__pwned=1">';

  test('arguments, result, diff, reason, link labels and the tool name stay text', () => {
    const nodes = [
      render(card({ tool: evil, arguments: { command: evil, [evil]: evil }, tool_call_id: 'a' })),
      render(card({ status: 'failed', result: evil, is_error: true, tool_call_id: 'b' })),
      render(card({ status: 'done', result: (evil + '\n').repeat(30), tool_call_id: 'c' })),
      render(card({ tool: 'edit_file', preview: `+${evil}\n-${evil}`, tool_call_id: 'd' })),
      render(card({ status: 'calling', arguments: null, arguments_text: evil, tool_call_id: 'e' })),
      render(card({ status: 'rejected', decision: { decision: 'reject', by: evil, reason: evil }, tool_call_id: 'f' })),
      render(card({ status: 'done', links: [{ label: evil, path: 'javascript:alert(1)' }], tool_call_id: 'g' }))
    ];
    for (const node of nodes) {
      expect(node.querySelector('img')).toBeNull();
      expect(node.textContent).toContain(evil);
    }
    const link = nodes[6].querySelector('a')!;
    expect(link.getAttribute('href')).toBe('http://localhost:8888/base/javascript:alert(1)');
    expect((window as any).__pwned).toBeUndefined();
  });

  test('an error message from the server stays text', async () => {
    const api = fakeApi();
    const node = render(card(), api);
    click(node, 'approve');
    api.calls[0].resolve({ ok: false, status: 400, body: { message: evil } });
    await flush();
    expect(q(node, 'error')?.textContent).toBe(evil);
    expect(node.querySelector('img')).toBeNull();
  });
});

describe('buttons', () => {
  test('Approve posts the decision to the call, buttons disabled while it runs', async () => {
    const api = fakeApi();
    const node = render(card({ session: 's/1', tool_call_id: 'call 1' }), api);
    click(node, 'approve');
    expect(api.calls).toHaveLength(1);
    expect(api.calls[0].path).toBe('agentspace/api/sessions/s%2F1/approvals/call%201');
    expect(api.calls[0].body).toEqual({ decision: 'approve' });
    for (const cls of ['approve', 'reject', 'edit', 'remember']) {
      expect((q(node, cls) as HTMLButtonElement).disabled).toBe(true);
    }
    click(node, 'approve'); // disabled: nothing more is sent
    expect(api.calls).toHaveLength(1);
    api.calls[0].resolve({ ok: true, status: 200, body: {} });
    await flush();
    // the card waits for the server's update: still pending, buttons still disabled
    expect(node.dataset.status).toBe('pending');
    expect((q(node, 'approve') as HTMLButtonElement).disabled).toBe(true);
    expect(q(node, 'note')).not.toBeNull();
    // the update comes: no buttons any more
    render(card({ session: 's/1', tool_call_id: 'call 1', status: 'running', decision: { decision: 'approve', by: 'me' } }), api, node);
    expect(q(node, 'approve')).toBeNull();
    expect(q(node, 'decision')?.textContent).toBe('approved by me');
  });

  test('Always allow posts approve with remember', () => {
    const api = fakeApi();
    click(render(card(), api), 'remember');
    expect(api.calls[0].body).toEqual({ decision: 'approve', remember: true });
  });

  test('Reject reveals a reason and posts it on confirm', () => {
    const api = fakeApi();
    const node = render(card(), api);
    expect(q(node, 'reason')).toBeNull();
    click(node, 'reject');
    expect(api.calls).toHaveLength(0);
    const reason = q(node, 'reason') as HTMLInputElement;
    type(reason, '  not now ');
    click(node, 'reject-confirm');
    expect(api.calls[0].body).toEqual({ decision: 'reject', reason: 'not now' });
  });

  test('Reject with no reason sends none; Enter confirms', () => {
    const api = fakeApi();
    const node = render(card(), api);
    click(node, 'reject');
    q(node, 'reason')!.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter' }));
    expect(api.calls[0].body).toEqual({ decision: 'reject' });
  });

  test('Edit: prefilled with the arguments, posts the parsed object', () => {
    const api = fakeApi();
    const node = render(card({ arguments: { command: 'rm -rf build' } }), api);
    click(node, 'edit');
    const text = q(node, 'edit-text') as HTMLTextAreaElement;
    expect(JSON.parse(text.value)).toEqual({ command: 'rm -rf build' });
    expect(text.value).toContain('\n  "command"'); // pretty
    type(text, '{"command": "rm -rf build/tmp"}');
    click(node, 'edit-submit');
    expect(api.calls[0].body).toEqual({ decision: 'edit', arguments: { command: 'rm -rf build/tmp' } });
  });

  test.each([['{"command": '], ['[1, 2]'], ['"ls"'], ['null']])(
    'Edit with %s shows an inline error and posts nothing',
    async bad => {
      const api = fakeApi();
      const node = render(card(), api);
      click(node, 'edit');
      type(q(node, 'edit-text') as HTMLTextAreaElement, bad);
      click(node, 'edit-submit');
      await flush();
      expect(api.calls).toHaveLength(0);
      const error = q(node, 'edit-error');
      expect(error).not.toBeNull();
      expect(error!.previousElementSibling).toBe(q(node, 'edit-text'));
      expect((q(node, 'edit-text') as HTMLTextAreaElement).value).toBe(bad); // kept to fix
      // fixed: the error goes, the decision is sent
      type(q(node, 'edit-text') as HTMLTextAreaElement, '{"command": "ls"}');
      click(node, 'edit-submit');
      expect(api.calls).toHaveLength(1);
    }
  );

  test('409: says who decided, and the card cannot be decided again', async () => {
    const api = fakeApi();
    const node = render(card(), api);
    click(node, 'approve');
    api.calls[0].resolve({
      ok: false,
      status: 409,
      body: { error: 'decided', message: 'already decided', decided_by: 'bob', decision: 'reject' }
    });
    await flush();
    expect(q(node, 'error')?.textContent).toBe('already decided by bob (reject)');
    for (const cls of ['approve', 'reject', 'edit', 'remember']) {
      expect((q(node, cls) as HTMLButtonElement).disabled).toBe(true);
    }
  });

  test('another error: its message, and the buttons again', async () => {
    const api = fakeApi();
    const node = render(card(), api);
    click(node, 'approve');
    api.calls[0].resolve({ ok: false, status: 403, body: { error: 'forbidden', message: 'not allowed' } });
    await flush();
    expect(q(node, 'error')?.textContent).toBe('not allowed');
    expect((q(node, 'approve') as HTMLButtonElement).disabled).toBe(false);
    click(node, 'approve');
    expect(api.calls).toHaveLength(2);
    expect(q(node, 'error')).toBeNull(); // cleared while the new request runs
  });

  test('a network failure is shown, the buttons come back', async () => {
    const api = fakeApi();
    const node = render(card(), api);
    click(node, 'reject');
    click(node, 'reject-confirm');
    api.calls[0].reject(new Error('offline'));
    await flush();
    expect(q(node, 'error')?.textContent).toContain('offline');
    expect((q(node, 'reject-confirm') as HTMLButtonElement).disabled).toBe(false);
  });

  test('an error with no JSON body says its status', async () => {
    const api = fakeApi();
    const node = render(card(), api);
    click(node, 'approve');
    api.calls[0].resolve({ ok: false, status: 502, body: null });
    await flush();
    expect(q(node, 'error')?.textContent).toBe('HTTP 502');
  });

  test.each(['running', 'calling'] as Status[])('Stop on a %s card posts to the session', async status => {
    const api = fakeApi();
    const node = render(card({ status, session: 's1' }), api);
    click(node, 'stop');
    expect(api.calls[0].path).toBe('agentspace/api/sessions/s1/stop');
    expect(api.calls[0].body).toEqual({});
    expect((q(node, 'stop') as HTMLButtonElement).disabled).toBe(true);
    api.calls[0].resolve({ ok: true, status: 200, body: {} });
    await flush();
    expect((q(node, 'stop') as HTMLButtonElement).disabled).toBe(true);
  });
});

describe('rendering again', () => {
  test('keeps an open reject form and its text while pending (same node)', () => {
    const api = fakeApi();
    const node = render(card(), api);
    click(node, 'reject');
    const reason = q(node, 'reason') as HTMLInputElement;
    reason.focus();
    type(reason, 'because');
    render(card({ arguments: { command: 'ls -l' } }), api, node);
    const again = q(node, 'reason') as HTMLInputElement;
    expect(again).not.toBe(reason);
    expect(again.value).toBe('because');
    expect(document.activeElement).toBe(again);
    expect(q(node, 'command')?.textContent).toBe('ls -l');
  });

  test('keeps an open edit form and its text in a new renderer node', () => {
    const api = fakeApi();
    const first = render(card(), api);
    click(first, 'edit');
    type(q(first, 'edit-text') as HTMLTextAreaElement, '{"command": "pwd"');
    const second = render(card(), api); // jupyterlab-chat renders an update into a new node
    expect((q(second, 'edit-text') as HTMLTextAreaElement).value).toBe('{"command": "pwd"');
  });

  test('forgets the form once the call is decided, and when it is pending again', () => {
    const api = fakeApi();
    const node = render(card(), api);
    click(node, 'reject');
    type(q(node, 'reason') as HTMLInputElement, 'because');
    render(card({ status: 'rejected', decision: { decision: 'reject', by: 'bob', reason: 'no' } }), api, node);
    expect(q(node, 'reason')).toBeNull();
    expect(node.querySelector('button')).toBeNull();
    render(card(), api, node);
    expect(q(node, 'reason')).toBeNull();
  });

  test('a reply that comes after the card moved on changes nothing', async () => {
    const api = fakeApi();
    const node = render(card(), api);
    click(node, 'approve');
    render(card({ status: 'running', decision: { decision: 'approve', by: 'me' } }), api, node);
    api.calls[0].resolve({ ok: false, status: 409, body: { decided_by: 'me', decision: 'approve' } });
    await flush();
    expect(q(node, 'error')).toBeNull();
    expect(q(node, 'stop')).not.toBeNull();
  });

  test('keeps an expanded long result open', () => {
    const api = fakeApi();
    const result = 'x\n'.repeat(40);
    const node = render(card({ status: 'done', result }), api);
    (node.querySelector('details') as HTMLDetailsElement).open = true;
    render(card({ status: 'done', result }), api, node);
    expect((node.querySelector('details') as HTMLDetailsElement).open).toBe(true);
  });
});

describe('a card in a notebook output', () => {
  it('decides nothing: the call is decided in its chat', async () => {
    const notebook = document.createElement('div');
    notebook.className = 'jp-Notebook';
    document.body.append(notebook);
    const api = fakeApi();
    const node = document.createElement('div');
    notebook.append(node);
    renderCard(node, card({ status: 'pending', tool_call_id: 'call_nb' }), api);
    (node.querySelector('.jp-agentspace-card-approve') as HTMLButtonElement).click();
    await flush();
    expect(api.calls).toHaveLength(0);
    expect(node.querySelector('.jp-agentspace-card-error')?.textContent).toContain('agent chat');
    notebook.remove();
  });
});
