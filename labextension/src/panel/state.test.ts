/**
 * The agent panel's reducer (state.ts) and its words (format.ts), without a server or a DOM.
 *
 * The events are shaped as the server sends them (captured from a live session: AG-UI in
 * camelCase, `agentspace.*` CUSTOM values in snake_case).
 */

import { describe, expect, it } from '@jest/globals';

import {
  budgetText,
  callsText,
  ceilingText,
  costText,
  diffLineKind,
  processStatusText,
  share,
  sizeText,
  statusLabel,
  windowText
} from './format';
import {
  Action,
  canResume,
  canStop,
  decideKey,
  effects,
  incomplete,
  initialState,
  modelOptions,
  PanelState,
  reduce
} from './state';
import { AgUiEvent, Json, SessionInfo } from './types';

const SID = 'sess1';

function info(overrides: Partial<SessionInfo> = {}): SessionInfo {
  return {
    id: SID,
    notebook: 'a.ipynb',
    model: null,
    effective_model: 'scripted/echo',
    status: 'idle',
    reason: null,
    usage: {
      input_tokens: 0,
      output_tokens: 0,
      total_tokens: 0,
      cost: 0,
      model_calls: 0,
      unpriced_calls: 0
    },
    queued: 0,
    pending_calls: [],
    last_seq: 0,
    ...overrides
  };
}

const WRITE_CALL = {
  tool_call_id: 'call_0_0',
  tool: 'write_file',
  arguments: { path: 'a.txt', content: 'hi\n' },
  reason: 'tool_approval',
  message: 'Approve the call to write_file?',
  executor: 'sandbox',
  needs_approval: true,
  preview: '--- /dev/null\n+++ b/a.txt\n@@ -0,0 +1 @@\n+hi'
};

function interrupted(id: string, tool = 'shell', extra: Json = {}): AgUiEvent {
  return {
    type: 'RUN_FINISHED',
    threadId: SID,
    runId: 'run_1',
    outcome: {
      type: 'interrupt',
      interrupts: [
        {
          id,
          reason: 'tool_approval',
          message: `Approve the call to ${tool}?`,
          toolCallId: id,
          metadata: {
            tool,
            arguments: { command: 'ls' },
            executor: 'sandbox',
            needs_approval: true,
            ...extra
          }
        }
      ]
    },
    usage: [{ model: 'scripted/echo', inputTokens: 54, outputTokens: 6, totalTokens: 60 }]
  };
}

const custom = (name: string, value: Json): AgUiEvent => ({ type: 'CUSTOM', name, value });

/** Fold actions into a state, from a notebook's fresh state by default. */
function fold(actions: Action[], state: PanelState = initialState('a.ipynb')): PanelState {
  return actions.reduce(reduce, state);
}

/** Events numbered from `first`, for this session. */
function events(first: number, ...list: AgUiEvent[]): Action[] {
  return list.map((event, i) => ({ type: 'event', sessionId: SID, seq: first + i, event }));
}

describe('the notebook', () => {
  it('starts with no notebook, then connects to the one that is current', () => {
    expect(initialState().connection).toBe('none');
    const state = reduce(initialState(), { type: 'notebook', path: 'a.ipynb' });
    expect(state.notebook).toBe('a.ipynb');
    expect(state.connection).toBe('connecting');
  });

  it('keeps everything when the same notebook is current again', () => {
    const state = fold([{ type: 'info', info: info() }]);
    expect(reduce(state, { type: 'notebook', path: 'a.ipynb' })).toBe(state);
  });

  it('starts over for another notebook, and for none', () => {
    const state = fold([{ type: 'info', info: info({ queued: 2 }) }]);
    const other = reduce(state, { type: 'notebook', path: 'b.ipynb' });
    expect(other.sessionId).toBeNull();
    expect(other.queued).toBe(0);
    expect(reduce(state, { type: 'notebook', path: null }).connection).toBe('none');
  });
});

describe('the session info', () => {
  it('gives the status, model, queue, pending calls and usage', () => {
    const state = fold([
      {
        type: 'info',
        info: info({
          status: 'awaiting_approval',
          queued: 1,
          pending_calls: [WRITE_CALL],
          last_seq: 14,
          usage: {
            input_tokens: 54,
            output_tokens: 6,
            total_tokens: 60,
            cost: null,
            model_calls: 1,
            unpriced_calls: 1
          }
        })
      }
    ]);
    expect(state.connection).toBe('live');
    expect(state.sessionId).toBe(SID);
    expect(state.status).toBe('awaiting_approval');
    expect(state.model).toBe('scripted/echo');
    expect(state.ownModel).toBe(false);
    expect(state.queued).toBe(1);
    expect(state.pending).toEqual([
      {
        toolCallId: 'call_0_0',
        tool: 'write_file',
        arguments: { path: 'a.txt', content: 'hi\n' },
        reason: 'tool_approval',
        message: 'Approve the call to write_file?',
        executor: 'sandbox',
        needsApproval: true,
        preview: WRITE_CALL.preview,
        error: null
      }
    ]);
    expect(state.usage).toEqual({
      inputTokens: 54,
      outputTokens: 6,
      totalTokens: 60,
      cost: null,
      modelCalls: 1,
      unpricedCalls: 1
    });
    expect(state.infoSeq).toBe(14);
  });

  it("names the session's own model", () => {
    const state = fold([{ type: 'info', info: info({ model: 'openai/gpt-4o', effective_model: 'openai/gpt-4o' }) }]);
    expect(state.model).toBe('openai/gpt-4o');
    expect(state.ownModel).toBe(true);
  });

  it('older than the events folded in, gives the model but not the status', () => {
    const state = fold([
      { type: 'info', info: info({ last_seq: 1 }) },
      ...events(2, { type: 'RUN_STARTED' }, custom('agentspace.status', { status: 'running' })),
      { type: 'info', info: info({ last_seq: 2, status: 'idle', model: 'x/y', effective_model: 'x/y' }) }
    ]);
    expect(state.status).toBe('running');
    expect(state.model).toBe('x/y');
  });

  it('of another session (the notebook got a new one) starts over', () => {
    const state = fold([
      { type: 'info', info: info() },
      ...events(1, custom('agentspace.preview', { port: 8000, url: '/p/8000/' })),
      { type: 'info', info: info({ id: 'sess2' }) }
    ]);
    expect(state.sessionId).toBe('sess2');
    expect(state.previews).toEqual([]);
    expect(state.lastSeq).toBe(0);
  });

  it('paused with no call listed yet, keeps the calls the events gave and says so', () => {
    // an older server read an info's calls before the pause stored them, its last_seq after
    const held = fold([{ type: 'info', info: info({ last_seq: 5 }) }, ...events(6, interrupted('call_1'))]);
    const racy = reduce(held, { type: 'info', info: info({ status: 'awaiting_approval', last_seq: 7 }) });
    expect(racy.pending.map(p => p.toolCallId)).toEqual(['call_1']);
    expect(incomplete(racy)).toBe(false);
    const fresh = fold([{ type: 'info', info: info({ status: 'awaiting_approval', last_seq: 7 }) }]);
    expect(incomplete(fresh)).toBe(true);
    const later = reduce(fresh, { type: 'info', info: info({ status: 'awaiting_approval', pending_calls: [WRITE_CALL], last_seq: 7 }) });
    expect(incomplete(later)).toBe(false);
  });

  it('lists no call once the session no longer waits (an info read as a call was decided)', () => {
    const state = fold([{ type: 'info', info: info({ status: 'running', pending_calls: [WRITE_CALL] }) }]);
    expect(state.pending).toEqual([]);
  });

  it('clears the offline state', () => {
    const offline = fold([{ type: 'offline', message: 'Failed to fetch' }]);
    expect(offline.connection).toBe('offline');
    expect(offline.offline).toBe('Failed to fetch');
    const back = reduce(offline, { type: 'info', info: info() });
    expect(back.connection).toBe('live');
    expect(back.offline).toBeNull();
  });
});

describe('the limits', () => {
  const LIMITS = { token_budget: 5000, cost_ceiling: 0.5, max_model_calls: 20, context_window: 128000 };

  it('come with the info, and stay when an info has none', () => {
    const state = fold([{ type: 'info', info: info({ limits: LIMITS }) }]);
    expect(state.limits).toEqual({ tokenBudget: 5000, costCeiling: 0.5, maxModelCalls: 20, contextWindow: 128000 });
    expect(reduce(state, { type: 'info', info: info() }).limits).toBe(state.limits);
    expect(fold([{ type: 'info', info: info() }]).limits).toBeNull();
  });

  it('say none for a bound that is not set, also from an info older than the events', () => {
    const open = { token_budget: null, cost_ceiling: null, max_model_calls: 7, context_window: null };
    const state = fold([
      { type: 'info', info: info({ last_seq: 3 }) },
      ...events(4, { type: 'RUN_STARTED' }),
      { type: 'info', info: info({ last_seq: 2, limits: open }) }
    ]);
    expect(state.limits).toEqual({ tokenBudget: null, costCeiling: null, maxModelCalls: 7, contextWindow: null });
  });

  it('are what the usage is shown against', () => {
    const usage = { inputTokens: 1000, outputTokens: 250, totalTokens: 1250, cost: 0.1, modelCalls: 3, unpricedCalls: 0 };
    const limits = fold([{ type: 'info', info: info({ limits: LIMITS }) }]).limits;
    expect(budgetText(usage, limits)).toBe('Token budget: 1,250 of 5,000 (25%)');
    expect(ceilingText(usage, limits)).toBe('Cost ceiling: $0.10 of $0.50 (20%)');
    expect(callsText(limits)).toBe('Model calls: at most 20 per run');
    expect(windowText(limits)).toBe('Context window: 128,000 tokens (the history is trimmed to it)');
    expect(share(1250, 5000)).toBe(0.25);
    expect(share(6000, 5000)).toBeGreaterThan(1);
    expect(share(1, null)).toBeNull();
    expect(budgetText({ ...usage, totalTokens: 5200 }, limits)).toBe('Token budget: 5,200 of 5,000 (104%)');
  });

  it('never take an unknown spend for $0, and say when there are none', () => {
    const usage = { inputTokens: 1, outputTokens: 1, totalTokens: 2, cost: null, modelCalls: 1, unpricedCalls: 1 };
    const limits = { tokenBudget: null, costCeiling: 1, maxModelCalls: 20, contextWindow: null };
    expect(ceilingText(usage, limits)).toBe('Cost ceiling: $1.00; the spend is unknown (no price for this model)');
    expect(ceilingText({ ...usage, cost: 0.25 }, limits)).toBe('Cost ceiling: $0.25 of $1.00 (25%); 1 call not counted');
    expect(share(null, 1)).toBeNull();
    expect(budgetText(usage, limits)).toBe('Token budget: none');
    expect(ceilingText(usage, null)).toBe('Cost ceiling: none');
    expect(windowText(limits)).toBe('Context window: not known yet');
  });
});

describe('previews from the info', () => {
  const listed = info({
    last_seq: 20,
    previews: [
      { port: 8000, url: '/p/8000/' },
      { port: 3000, url: '/p/3000/' }
    ]
  });

  it('are taken, and the stream follows from the info on (no replay from the start)', () => {
    const state = fold([{ type: 'info', info: listed }]);
    expect(state.previews).toEqual([
      { port: 3000, url: '/p/3000/' },
      { port: 8000, url: '/p/8000/' }
    ]);
    expect(state.lastSeq).toBe(20); // where the controller opens the stream
    const replayed = fold(events(5, custom('agentspace.preview', { port: 9999, url: '/old/' })), state);
    expect(replayed).toBe(state);
    const later = fold(events(21, custom('agentspace.preview', { port: 9000, url: '/p/9000/' })), state);
    expect(later.previews.map(p => p.port)).toEqual([3000, 8000, 9000]);
  });

  it('are unknown when null: the stream is read from the start for them', () => {
    const state = fold([{ type: 'info', info: info({ last_seq: 20, previews: null }) }]);
    expect(state.lastSeq).toBe(0);
    const replayed = fold(events(5, custom('agentspace.preview', { port: 8000, url: '/p/8000/' })), state);
    expect(replayed.previews).toEqual([{ port: 8000, url: '/p/8000/' }]);
    // a later info that lists them replaces what the replay found, and skips the rest
    const again = reduce(replayed, { type: 'info', info: { ...listed, last_seq: 30 } });
    expect(again.previews.map(p => p.port)).toEqual([3000, 8000]);
    expect(again.lastSeq).toBe(30);
  });

  it('from an info older than the events, leave the previews the events gave', () => {
    const state = fold([
      { type: 'info', info: listed },
      ...events(21, custom('agentspace.preview', { port: 9000, url: '/p/9000/' }))
    ]);
    const older = reduce(state, { type: 'info', info: { ...listed, last_seq: 19 } });
    expect(older.previews).toBe(state.previews);
    expect(older.lastSeq).toBe(21);
  });

  it('that did not change keep the list as it was (nothing to draw again)', () => {
    const state = fold([{ type: 'info', info: listed }]);
    expect(reduce(state, { type: 'info', info: { ...listed, last_seq: 22 } }).previews).toBe(state.previews);
  });
});

describe('the models to pick from', () => {
  const choices = {
    default: 'scripted/echo',
    models: ['scripted/echo', 'openai/gpt-4o-mini', 'openai/gpt-4o-mini', ''],
    about: 'suggestions, not a catalogue'
  };

  it("are the server's, each once, with what the list is", () => {
    const state = fold([{ type: 'models', choices }]);
    expect(state.models).toEqual(['scripted/echo', 'openai/gpt-4o-mini']);
    expect(state.modelsAbout).toBe('suggestions, not a catalogue');
  });

  it("offer the session's own model too, and stay when the notebook changes", () => {
    const state = fold([
      { type: 'models', choices },
      { type: 'info', info: info({ model: 'ollama_chat/llama3', effective_model: 'ollama_chat/llama3' }) }
    ]);
    expect(modelOptions(state)).toEqual(['scripted/echo', 'openai/gpt-4o-mini', 'ollama_chat/llama3']);
    const other = reduce(state, { type: 'notebook', path: 'b.ipynb' });
    expect(other.sessionId).toBeNull();
    expect(other.models).toEqual(state.models);
    expect(modelOptions(fold([{ type: 'models', choices }]))).toEqual(['scripted/echo', 'openai/gpt-4o-mini']);
  });
});

describe('events', () => {
  const live = fold([{ type: 'info', info: info({ last_seq: 10 }) }]);

  it('move the status on', () => {
    let state = fold(events(11, { type: 'RUN_STARTED' }), live);
    expect(state.status).toBe('running');
    state = fold(events(12, custom('agentspace.status', { status: 'idle' })), state);
    expect(state.status).toBe('idle');
    expect(state.lastSeq).toBe(12);
  });

  it('hold calls for approval from a RUN_FINISHED interrupt', () => {
    const state = fold(
      events(11, { type: 'RUN_STARTED' }, interrupted('call_1', 'write_file', { preview: '+x' })),
      live
    );
    expect(state.status).toBe('awaiting_approval');
    expect(state.pending).toHaveLength(1);
    expect(state.pending[0]).toMatchObject({
      toolCallId: 'call_1',
      tool: 'write_file',
      arguments: { command: 'ls' },
      preview: '+x',
      needsApproval: true
    });
    expect(state.lastRun).toEqual({ inputTokens: 54, outputTokens: 6 });
  });

  it('mark a kernel call as such', () => {
    const event = interrupted('call_k', 'run_cell', { executor: 'kernel' });
    event.outcome.interrupts[0].reason = 'kernel_tool';
    const state = fold(events(11, event), live);
    expect(state.pending[0].reason).toBe('kernel_tool');
    expect(state.pending[0].executor).toBe('kernel');
    expect(state.pending[0].preview).toBeNull();
  });

  it('let a decision take its call off the list, from any view', () => {
    const held = fold(events(11, interrupted('call_1'), interrupted('call_2')), live);
    expect(held.pending.map(p => p.toolCallId)).toEqual(['call_1', 'call_2']);
    const decided = fold(
      events(13, custom('agentspace.decision', { tool_call_id: 'call_1', decision: 'approve', by: 'alice' })),
      held
    );
    expect(decided.pending.map(p => p.toolCallId)).toEqual(['call_2']);
  });

  it('ignore a call let through by a rule', () => {
    const held = fold(events(11, interrupted('call_1')), live);
    const auto = custom('agentspace.decision', {
      tool_call_id: 'call_1',
      decision: 'approve',
      auto: true,
      rule: 'always allow'
    });
    expect(fold(events(12, auto), held).pending).toHaveLength(1);
  });

  it('clear the pending calls when a run starts again', () => {
    const held = fold(events(11, interrupted('call_1')), live);
    const state = fold(events(12, { type: 'RUN_STARTED' }, custom('agentspace.status', { status: 'running' })), held);
    expect(state.pending).toEqual([]);
  });

  it('say how a run ended', () => {
    const cancelled = { type: 'RUN_FINISHED', outcome: { type: 'cancelled' } };
    expect(fold(events(11, cancelled), live).status).toBe('stopped');
    expect(fold(events(11, { type: 'RUN_FINISHED', outcome: { type: 'success' } }), live).status).toBe('idle');
    const failed = fold(events(11, { type: 'RUN_ERROR', message: 'over budget', code: 'limit' }), live);
    expect(failed.status).toBe('failed');
    expect(failed.reason).toBe('over budget');
    expect(fold(events(11, { type: 'RUN_ERROR', message: 'died', code: 'crashed' }), live).status).toBe('crashed');
    const status = custom('agentspace.status', { status: 'failed', reason: 'the provider failed' });
    expect(fold(events(11, status), live).reason).toBe('the provider failed');
  });

  it('count the queue: a queued message adds one, a user message that starts takes one', () => {
    let state = fold(events(11, custom('agentspace.queued', { message_id: 'm1', position: 1 })), live);
    state = fold(events(12, custom('agentspace.queued', { message_id: 'm2', position: 2 })), state);
    expect(state.queued).toBe(2);
    state = fold(events(13, { type: 'TEXT_MESSAGE_START', messageId: 'm1', role: 'user' }), state);
    expect(state.queued).toBe(1);
    state = fold(events(14, { type: 'TEXT_MESSAGE_START', messageId: 'a1', role: 'assistant' }), state);
    expect(state.queued).toBe(1);
    state = fold(events(15, { type: 'TEXT_MESSAGE_START', messageId: 'm2', role: 'user' }), state);
    state = fold(events(16, { type: 'TEXT_MESSAGE_START', messageId: 'm3', role: 'user' }), state);
    expect(state.queued).toBe(0); // a message sent while idle was never counted as queued
  });

  it('replayed at or before the info change only the previews', () => {
    const replay = fold(
      events(
        1,
        { type: 'RUN_STARTED' },
        interrupted('call_old'),
        custom('agentspace.queued', { message_id: 'm', position: 1 }),
        custom('agentspace.preview', { port: 8000, url: '/agentspace/preview/s/8000/' }),
        custom('agentspace.process', { name: 'web', status: 'running', command: 'x', started: 1 })
      ),
      live
    );
    expect(replay.status).toBe('idle');
    expect(replay.pending).toEqual([]);
    expect(replay.queued).toBe(0);
    expect(replay.processes).toBeNull();
    expect(replay.previews).toEqual([{ port: 8000, url: '/agentspace/preview/s/8000/' }]);
    expect(replay.lastSeq).toBe(5);
  });

  it('seen already, or of another session, are ignored', () => {
    const once = fold(events(11, custom('agentspace.queued', { position: 1 })), live);
    expect(fold(events(11, custom('agentspace.queued', { position: 1 })), once)).toBe(once);
    const other: Action = { type: 'event', sessionId: 'other', seq: 12, event: { type: 'RUN_STARTED' } };
    expect(reduce(once, other)).toBe(once);
  });

  it('keep one preview per port, the newest URL', () => {
    const state = fold(
      events(
        11,
        custom('agentspace.preview', { port: 8000, url: '/a/' }),
        custom('agentspace.preview', { port: 3000, url: '/b/' }),
        custom('agentspace.preview', { port: 8000, url: '/c/' }),
        custom('agentspace.preview', { port: 'x', url: '/d/' })
      ),
      live
    );
    expect(state.previews).toEqual([
      { port: 3000, url: '/b/' },
      { port: 8000, url: '/c/' }
    ]);
  });

  it('update a process from its event', () => {
    const listed = reduce(live, {
      type: 'processes',
      processes: [
        { name: 'web', command: 'serve', status: 'running', exit_code: null, started: 2, ended: null, log: 'l' },
        { name: 'job', command: 'make', status: 'exited', exit_code: 0, started: 1, ended: 3, log: 'm' }
      ]
    });
    expect(listed.processes?.map(p => p.name)).toEqual(['job', 'web']);
    const exited = custom('agentspace.process', {
      event: 'exited',
      name: 'web',
      command: 'serve',
      status: 'exited',
      exit_code: 1,
      started: 2,
      ended: 5,
      log: 'l'
    });
    const state = fold(events(11, exited), listed);
    expect(state.processes?.find(p => p.name === 'web')).toMatchObject({ status: 'exited', exit_code: 1 });
    expect(state.processes).toHaveLength(2);
  });

  it('take usage totals from agentspace.usage', () => {
    const usage = custom('agentspace.usage', {
      run: {},
      session: { input_tokens: 10, output_tokens: 5, cost: 0.5, model_calls: 2, unpriced_calls: 0 }
    });
    const state = fold(events(11, usage), live);
    expect(state.usage).toMatchObject({ totalTokens: 15, cost: 0.5, modelCalls: 2 });
  });

  it('keep the warnings, each once', () => {
    const warning = custom('agentspace.warning', { code: 'c', message: 'cannot enforce the ceiling' });
    const state = fold(events(11, warning, warning), live);
    expect(state.warnings).toEqual(['cannot enforce the ceiling']);
  });
});

describe('effects', () => {
  const live = fold([{ type: 'info', info: info({ last_seq: 10 }) }]);

  it('ask for the info again when a run ends or the status changes', () => {
    expect(effects(live, SID, 11, { type: 'RUN_FINISHED' }).info).toBe(true);
    expect(effects(live, SID, 11, { type: 'RUN_ERROR' }).info).toBe(true);
    expect(effects(live, SID, 11, custom('agentspace.status', { status: 'idle' })).info).toBe(true);
    expect(effects(live, SID, 11, { type: 'TEXT_MESSAGE_CONTENT' }).info).toBe(false);
  });

  it('ask for the files and the processes again when they changed', () => {
    expect(effects(live, SID, 11, custom('agentspace.files', { paths: ['a'] }))).toEqual({
      info: false,
      files: true,
      processes: false
    });
    expect(effects(live, SID, 11, custom('agentspace.process', { name: 'web' })).processes).toBe(true);
  });

  it('ask for nothing for a replayed event, a repeat or another session', () => {
    const none = { info: false, files: false, processes: false };
    expect(effects(live, SID, 10, { type: 'RUN_FINISHED' })).toEqual(none);
    expect(effects(live, 'other', 11, { type: 'RUN_FINISHED' })).toEqual(none);
  });
});

describe('requests', () => {
  const held = fold([{ type: 'info', info: info({ status: 'awaiting_approval', pending_calls: [WRITE_CALL], last_seq: 3 }) }]);
  const key = decideKey('call_0_0');

  it('are busy while in flight', () => {
    const state = reduce(held, { type: 'requestStarted', key });
    expect(state.busy[key]).toBe(true);
    expect(reduce(state, { type: 'requestDone', key: 'stop' }).busy[key]).toBe(true);
  });

  it('that decided a call take it off at once', () => {
    const state = fold([{ type: 'requestStarted', key }, { type: 'requestDone', key }], held);
    expect(state.busy).toEqual({});
    expect(state.pending).toEqual([]);
  });

  it('that failed show why, on the call and for the panel', () => {
    const message = "Approve write_file: The tool call 'call_0_0' was already decided: approved by alice.";
    const state = fold([{ type: 'requestStarted', key }, { type: 'requestFailed', key, message }], held);
    expect(state.busy).toEqual({});
    expect(state.pending[0].error).toBe(message);
    expect(state.error).toBe(message);
    // a later info keeps the call's error; a new attempt clears it; the panel's can be dismissed
    const again = reduce(state, { type: 'info', info: info({ status: 'awaiting_approval', pending_calls: [WRITE_CALL], last_seq: 3 }) });
    expect(again.pending[0].error).toBe(message);
    const retried = reduce(again, { type: 'requestStarted', key });
    expect(retried.pending[0].error).toBeNull();
    expect(retried.error).toBeNull();
    expect(reduce(again, { type: 'dismissError' }).error).toBeNull();
  });

  it('for stop and resume follow the status', () => {
    const at = (status: string) => fold([{ type: 'info', info: info({ status }) }]);
    expect(canStop(at('running'))).toBe(true);
    expect(canStop(at('awaiting_approval'))).toBe(true);
    expect(canStop(at('idle'))).toBe(false);
    expect(canResume(at('stopped'))).toBe(true);
    expect(canResume(at('failed'))).toBe(true);
    expect(canResume(at('crashed'))).toBe(true);
    expect(canResume(at('running'))).toBe(false);
  });
});

describe('the workspace', () => {
  const live = fold([{ type: 'info', info: info() }]);

  it('lists folders one level at a time, with paths from the root', () => {
    const state = fold(
      [
        {
          type: 'folder',
          listing: {
            path: '.',
            entries: [
              { path: 'sub', kind: 'dir', size: null, target: null },
              { path: 'a.txt', kind: 'file', size: 3, target: null }
            ],
            truncated: false
          }
        },
        { type: 'toggleFolder', path: 'sub' },
        {
          type: 'folder',
          listing: { path: 'sub', entries: [{ path: 'index.html', kind: 'file', size: 12, target: null }], truncated: true }
        }
      ],
      live
    );
    expect(state.folders['.'].entries.map(e => e.path)).toEqual(['sub', 'a.txt']);
    expect(state.folders.sub.entries[0]).toEqual({
      name: 'index.html',
      path: 'sub/index.html',
      kind: 'file',
      size: 12,
      target: null
    });
    expect(state.folders.sub.truncated).toBe(true);
    expect(state.expandedFolders).toEqual(['sub']);
    expect(reduce(state, { type: 'toggleFolder', path: 'sub' }).expandedFolders).toEqual([]);
  });

  it('keeps what a folder listed when listing it again fails', () => {
    const listed = reduce(live, {
      type: 'folder',
      listing: { path: '.', entries: [{ path: 'a', kind: 'file', size: 1, target: null }], truncated: false }
    });
    const failed = reduce(listed, { type: 'folderFailed', path: '.', message: 'sandbox unavailable' });
    expect(failed.folders['.'].entries).toHaveLength(1);
    expect(failed.folders['.'].error).toBe('sandbox unavailable');
  });

  it("keeps a process's output and the error of the last poll", () => {
    let state = fold([{ type: 'toggleProcess', name: 'web' }, { type: 'output', name: 'web', output: 'hello' }], live);
    expect(state.expandedProcesses).toEqual(['web']);
    expect(state.outputs.web).toEqual({ text: 'hello', error: null });
    state = reduce(state, { type: 'outputFailed', name: 'web', message: 'gone' });
    expect(state.outputs.web).toEqual({ text: 'hello', error: 'gone' });
  });
});

describe('format', () => {
  it('never shows an unknown cost as $0', () => {
    const usage = { inputTokens: 1, outputTokens: 1, totalTokens: 2, modelCalls: 1, unpricedCalls: 1 };
    expect(costText({ ...usage, cost: null })).toMatch(/unknown/);
    expect(costText({ ...usage, cost: 0.5 })).toBe('$0.50 + 1 call without a known price');
    expect(costText({ ...usage, cost: 0.0012, unpricedCalls: 0 })).toBe('$0.0012');
  });

  it('names statuses, sizes, processes and diff lines', () => {
    expect(statusLabel('awaiting_approval')).toBe('awaiting approval');
    expect(sizeText(12)).toBe('12 B');
    expect(sizeText(12_345)).toBe('12 kB');
    expect(sizeText(null)).toBe('');
    expect(processStatusText('stopped_by_restart', null)).toBe('stopped by restart');
    expect(processStatusText('exited', 1)).toBe('exited (exit code 1)');
    expect(['+++ b/a', '@@ -0,0 +1 @@', '+x', '-y', ' z'].map(diffLineKind)).toEqual([
      'meta',
      'hunk',
      'add',
      'del',
      ''
    ]);
  });
});
