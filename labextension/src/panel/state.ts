/**
 * What the agent panel shows, folded from the session's info and its events: a pure reducer.
 *
 * Pure (no DOM, no requests, no clock) so that it is tested on its own (state.test.ts) and
 * so that the controller, which talks to the server, and the view, which draws, agree on
 * one state. Two sources feed it:
 *
 * - the session's info (`GET sessions/{id}`, `last_seq` N) is the truth about status,
 *   model, queue, pending calls, usage and previews as of event N (the server reads it all
 *   in one transaction), and gives the limits the usage is shown against;
 * - its events (the SSE stream, `id:` = seq) move that truth on. An info that lists the
 *   previews lets the stream start after N (`lastSeq` moves to N). One that cannot (null:
 *   the server has not had the workspace since it started) leaves the stream to be read
 *   from the start, as the log is then the only place they are found: an event at or
 *   before N changes only the previews; a later one changes the rest. An event whose seq
 *   was seen already is ignored, so a reconnect that overlaps does no harm.
 *
 * `effects` says what an event makes worth fetching again (the info, the files, the
 * processes); the controller does the fetching, and fetches the models to pick from
 * (`GET status`) once it connects.
 */

import {
  AgUiEvent,
  FileEntry,
  FileListing,
  Json,
  ModelChoices,
  PendingInfo,
  PreviewInfo,
  ProcessRecord,
  SessionInfo,
  SessionLimits,
  UsageTotals
} from './types';

export type Connection = 'none' | 'connecting' | 'live' | 'offline';

export interface Usage {
  inputTokens: number;
  outputTokens: number;
  totalTokens: number;
  /** USD of the priced calls; null: calls were made and none had a known price. */
  cost: number | null;
  modelCalls: number;
  unpricedCalls: number;
}

/** The bounds the session's usage is shown against; null: none. */
export interface Limits {
  tokenBudget: number | null;
  costCeiling: number | null;
  /** Per run (the usage counts the session's). */
  maxModelCalls: number | null;
  /** Tokens the history is trimmed to; null: the server cannot tell yet. */
  contextWindow: number | null;
}

export interface PendingCall {
  toolCallId: string;
  tool: string;
  arguments: unknown;
  /** 'tool_approval' (a person decides) or 'kernel_tool' (the notebook's kernel runs it). */
  reason: string;
  message: string;
  executor: string;
  needsApproval: boolean;
  /** What the call would change (a unified diff for file edits), if its tool has a preview. */
  preview: string | null;
  /** The last decision request's error, shown on the call. */
  error: string | null;
}

export interface Preview {
  port: number;
  url: string;
}

export interface Folder {
  entries: Entry[];
  truncated: boolean;
  error: string | null;
}

/** A workspace entry with its path from the workspace root. */
export interface Entry {
  name: string;
  path: string;
  kind: FileEntry['kind'];
  size: number | null;
  target: string | null;
}

export interface Output {
  text: string;
  error: string | null;
}

export interface PanelState {
  /** The current notebook's path; null when none is open. */
  notebook: string | null;
  sessionId: string | null;
  connection: Connection;
  /** Why the server could not be reached (connection 'offline'). */
  offline: string | null;
  status: string;
  reason: string | null;
  /** The model in use (the session's own, else the server's default). */
  model: string;
  /** Whether the session chose its model (false: the server's default). */
  ownModel: boolean;
  queued: number;
  pending: PendingCall[];
  usage: Usage;
  /** null until an info gives them (an older server gives none). */
  limits: Limits | null;
  /** Model strings to offer (`GET status`), and what that list is. */
  models: string[];
  modelsAbout: string;
  /** Tokens of the last run that ended (its RUN_FINISHED / RUN_ERROR usage). */
  lastRun: { inputTokens: number; outputTokens: number } | null;
  previews: Preview[];
  /** null until the first listing arrives. */
  processes: ProcessRecord[] | null;
  processesError: string | null;
  expandedProcesses: string[];
  outputs: { [name: string]: Output };
  /** Listed folders by path ('.' is the root). */
  folders: { [path: string]: Folder };
  expandedFolders: string[];
  warnings: string[];
  /** The last failed request's message (a decision, stop, resume, the model). */
  error: string | null;
  /** Requests in flight by key: 'stop', 'resume', 'model', 'decide:<id>', 'process:<name>'. */
  busy: { [key: string]: true };
  /** The highest seq received from the stream (where a reconnect resumes). */
  lastSeq: number;
  /** The `last_seq` of the newest info folded in. */
  infoSeq: number;
}

export type Action =
  | { type: 'notebook'; path: string | null }
  | { type: 'offline'; message: string }
  | { type: 'info'; info: SessionInfo }
  | { type: 'models'; choices: ModelChoices }
  | { type: 'event'; sessionId: string; seq: number; event: AgUiEvent }
  | { type: 'processes'; processes: ProcessRecord[] }
  | { type: 'processesFailed'; message: string }
  | { type: 'output'; name: string; output: string }
  | { type: 'outputFailed'; name: string; message: string }
  | { type: 'folder'; listing: FileListing }
  | { type: 'folderFailed'; path: string; message: string }
  | { type: 'toggleFolder'; path: string }
  | { type: 'toggleProcess'; name: string }
  | { type: 'requestStarted'; key: string }
  | { type: 'requestDone'; key: string }
  | { type: 'requestFailed'; key: string; message: string }
  | { type: 'dismissError' };

export interface Effects {
  info: boolean;
  files: boolean;
  processes: boolean;
}

export const ROOT = '.';
const MAX_WARNINGS = 5;
const WAITING = 'awaiting_approval';

const NO_USAGE: Usage = {
  inputTokens: 0,
  outputTokens: 0,
  totalTokens: 0,
  cost: 0,
  modelCalls: 0,
  unpricedCalls: 0
};

export function initialState(notebook: string | null = null): PanelState {
  return {
    notebook,
    sessionId: null,
    connection: notebook === null ? 'none' : 'connecting',
    offline: null,
    status: 'unknown',
    reason: null,
    model: '',
    ownModel: false,
    queued: 0,
    pending: [],
    usage: NO_USAGE,
    limits: null,
    models: [],
    modelsAbout: '',
    lastRun: null,
    previews: [],
    processes: null,
    processesError: null,
    expandedProcesses: [],
    outputs: {},
    folders: {},
    expandedFolders: [],
    warnings: [],
    error: null,
    busy: {},
    lastSeq: 0,
    infoSeq: 0
  };
}

export function reduce(state: PanelState, action: Action): PanelState {
  switch (action.type) {
    case 'notebook':
      return action.path === state.notebook ? state : fresh(state, action.path);
    case 'offline':
      return { ...state, connection: 'offline', offline: action.message };
    case 'info':
      return applyInfo(state, action.info);
    case 'models': {
      const models = (action.choices.models ?? []).filter(m => typeof m === 'string' && m);
      return { ...state, models: [...new Set(models)], modelsAbout: String(action.choices.about ?? '') };
    }
    case 'event':
      if (action.sessionId !== state.sessionId || action.seq <= state.lastSeq) {
        return state;
      }
      return applyEvent({ ...state, lastSeq: action.seq }, action.seq, action.event);
    case 'processes':
      return { ...state, processes: sortProcesses(action.processes), processesError: null };
    case 'processesFailed':
      return { ...state, processesError: action.message };
    case 'output':
      return {
        ...state,
        outputs: { ...state.outputs, [action.name]: { text: action.output, error: null } }
      };
    case 'outputFailed': {
      const text = state.outputs[action.name]?.text ?? '';
      return {
        ...state,
        outputs: { ...state.outputs, [action.name]: { text, error: action.message } }
      };
    }
    case 'folder': {
      const path = action.listing.path || ROOT;
      const folder: Folder = {
        entries: action.listing.entries.map(e => entry(path, e)),
        truncated: action.listing.truncated,
        error: null
      };
      return { ...state, folders: { ...state.folders, [path]: folder } };
    }
    case 'folderFailed': {
      const old = state.folders[action.path];
      const folder: Folder = {
        entries: old?.entries ?? [],
        truncated: old?.truncated ?? false,
        error: action.message
      };
      return { ...state, folders: { ...state.folders, [action.path]: folder } };
    }
    case 'toggleFolder':
      return { ...state, expandedFolders: toggle(state.expandedFolders, action.path) };
    case 'toggleProcess':
      return { ...state, expandedProcesses: toggle(state.expandedProcesses, action.name) };
    case 'requestStarted': // a new attempt: the last failure's message goes
      return {
        ...state,
        error: null,
        busy: { ...state.busy, [action.key]: true },
        pending: withCallError(state.pending, action.key, null)
      };
    case 'requestDone': {
      const decided = callOf(action.key);
      return {
        ...state,
        busy: without(state.busy, action.key),
        // the reply came: the call is decided even if its event is still on its way
        pending: decided ? state.pending.filter(p => p.toolCallId !== decided) : state.pending
      };
    }
    case 'requestFailed':
      return {
        ...state,
        busy: without(state.busy, action.key),
        pending: withCallError(state.pending, action.key, action.message),
        error: action.message
      };
    case 'dismissError':
      return { ...state, error: null };
  }
}

/** What an event (not yet folded into `state`) makes worth fetching again. */
export function effects(state: PanelState, sessionId: string, seq: number, event: AgUiEvent): Effects {
  const none = { info: false, files: false, processes: false };
  if (sessionId !== state.sessionId || seq <= state.lastSeq) {
    return none;
  }
  // an info read after this event has it already; the files and processes lists do not
  // (the info can come ahead of the stream on a loaded machine)
  const fresh = seq > state.infoSeq;
  switch (event.type) {
    case 'RUN_FINISHED':
    case 'RUN_ERROR':
    case 'TOOL_CALL_RESULT': // a model turn ended and a tool ran: the usage moved on
      return { ...none, info: fresh };
    case 'CUSTOM':
      return {
        info: fresh && event.name === 'agentspace.status',
        files: event.name === 'agentspace.files',
        processes: event.name === 'agentspace.process'
      };
    default:
      return none;
  }
}

/** Whether the session can be stopped (a run in flight, or paused on approvals). */
export function canStop(state: PanelState): boolean {
  return state.status === 'running' || state.status === WAITING;
}

/** Whether the session can be resumed (after a stop, a failure or a crash). */
export function canResume(state: PanelState): boolean {
  return ['stopped', 'failed', 'crashed'].includes(state.status);
}

/** The model strings to offer: the server's, and the session's own if it is not one. */
export function modelOptions(state: PanelState): string[] {
  return state.model && !state.models.includes(state.model) ? [...state.models, state.model] : state.models;
}

/** The decision key of a call ('decide:<id>'), shared by the controller and the reducer. */
export function decideKey(toolCallId: string): string {
  return `decide:${toolCallId}`;
}

// -- the info ----------------------------------------------------------------------------

/** A new notebook's or session's state; the server's models stay (they are not the session's). */
function fresh(state: PanelState, notebook: string | null): PanelState {
  return { ...initialState(notebook), models: state.models, modelsAbout: state.modelsAbout };
}

function applyInfo(state: PanelState, info: SessionInfo): PanelState {
  const other = state.sessionId !== null && state.sessionId !== info.id;
  const base = other ? fresh(state, state.notebook) : state; // a new session: start over
  const next: PanelState = {
    ...base,
    sessionId: info.id,
    connection: 'live',
    offline: null,
    model: info.effective_model || info.model || '',
    ownModel: Boolean(info.model),
    infoSeq: Math.max(base.infoSeq, info.last_seq)
  };
  const usage = usageOf(info.usage);
  if (usage.modelCalls >= base.usage.modelCalls) {
    next.usage = usage;
  }
  if (info.limits) {
    next.limits = limitsOf(info.limits); // settings, not moved on by events
  }
  if (info.last_seq < base.lastSeq) {
    return next; // older than events already folded in: they know better
  }
  next.status = info.status;
  next.reason = info.reason ?? null;
  next.queued = info.queued;
  if (Array.isArray(info.previews)) {
    // The info says all that the events up to its last_seq would: read them no more.
    const previews = previewsOf(info.previews);
    next.previews = samePreviews(previews, base.previews) ? base.previews : previews;
    next.lastSeq = info.last_seq;
  }
  // Calls wait only while the session does. The server reads an info's facts in one
  // transaction, so a paused session lists its calls; should one list none (a server
  // before that fix), the calls the events gave stay, and `incomplete` says to ask again.
  const calls = info.status === WAITING ? info.pending_calls ?? [] : [];
  const keep = info.status === WAITING && calls.length === 0;
  next.pending = keep ? base.pending : calls.map(p => pendingOf(p, base.pending));
  return next;
}

/** Whether the state says the session is paused on approvals yet lists none: the info is
 * worth fetching again (see `applyInfo`). */
export function incomplete(state: PanelState): boolean {
  return state.sessionId !== null && state.status === WAITING && state.pending.length === 0;
}

function usageOf(u: Partial<UsageTotals> | undefined): Usage {
  if (!u) {
    return NO_USAGE;
  }
  const inputTokens = Number(u.input_tokens ?? 0);
  const outputTokens = Number(u.output_tokens ?? 0);
  return {
    inputTokens,
    outputTokens,
    totalTokens: Number(u.total_tokens ?? inputTokens + outputTokens),
    cost: u.cost === null ? null : Number(u.cost ?? 0),
    modelCalls: Number(u.model_calls ?? 0),
    unpricedCalls: Number(u.unpriced_calls ?? 0)
  };
}

function limitsOf(l: Partial<SessionLimits>): Limits {
  const positive = (n: unknown) => (typeof n === 'number' && Number.isFinite(n) && n >= 0 ? n : null);
  return {
    tokenBudget: positive(l.token_budget),
    costCeiling: positive(l.cost_ceiling),
    maxModelCalls: positive(l.max_model_calls),
    contextWindow: positive(l.context_window)
  };
}

function samePreviews(a: Preview[], b: Preview[]): boolean {
  return a.length === b.length && a.every((p, i) => p.port === b[i].port && p.url === b[i].url);
}

function previewsOf(list: PreviewInfo[]): Preview[] {
  return list.reduce<Preview[]>((previews, p) => addPreview(previews, p), []);
}

function pendingOf(p: PendingInfo, before: PendingCall[]): PendingCall {
  const old = before.find(b => b.toolCallId === p.tool_call_id);
  return {
    toolCallId: p.tool_call_id,
    tool: p.tool,
    arguments: p.arguments,
    reason: p.reason,
    message: p.message,
    executor: p.executor,
    needsApproval: p.needs_approval,
    preview: p.preview ?? null,
    error: old?.error ?? null
  };
}

// -- events ------------------------------------------------------------------------------

function applyEvent(state: PanelState, seq: number, e: AgUiEvent): PanelState {
  if (e.type === 'CUSTOM' && e.name === 'agentspace.preview') {
    return withPreview(state, e.value ?? {}); // in no info: folded from the whole log
  }
  if (seq <= state.infoSeq) {
    return state; // the info already says what this did
  }
  switch (e.type) {
    case 'RUN_STARTED':
      return { ...state, status: 'running', reason: null, pending: [] };
    case 'RUN_FINISHED':
      return runFinished(state, e);
    case 'RUN_ERROR':
      return {
        ...state,
        status: e.code === 'crashed' ? 'crashed' : 'failed',
        reason: String(e.message ?? 'the run failed'),
        lastRun: runUsage(e.usage) ?? state.lastRun
      };
    case 'TEXT_MESSAGE_START':
      // a queued message is taken off the queue when its run shows it
      return e.role === 'user' ? { ...state, queued: Math.max(0, state.queued - 1) } : state;
    case 'CUSTOM':
      return custom(state, String(e.name ?? ''), e.value ?? {});
    default:
      return state;
  }
}

function runFinished(state: PanelState, e: AgUiEvent): PanelState {
  const outcome: Json = e.outcome ?? { type: 'success' };
  const lastRun = runUsage(e.usage) ?? state.lastRun;
  if (outcome.type === 'interrupt') {
    let pending = state.pending;
    for (const interrupt of outcome.interrupts ?? []) {
      const call = interruptCall(interrupt);
      pending = [...pending.filter(p => p.toolCallId !== call.toolCallId), call];
    }
    return { ...state, status: WAITING, pending, lastRun };
  }
  const status = outcome.type === 'cancelled' ? 'stopped' : 'idle';
  return { ...state, status, pending: [], lastRun };
}

function interruptCall(interrupt: Json): PendingCall {
  const meta: Json = interrupt.metadata ?? {};
  return {
    toolCallId: String(interrupt.toolCallId ?? interrupt.id ?? ''),
    tool: String(meta.tool ?? '?'),
    arguments: meta.arguments ?? {},
    reason: String(interrupt.reason ?? 'tool_approval'),
    message: String(interrupt.message ?? ''),
    executor: String(meta.executor ?? 'sandbox'),
    needsApproval: meta.needs_approval !== false,
    preview: typeof meta.preview === 'string' ? meta.preview : null,
    error: null
  };
}

function runUsage(usage: unknown): PanelState['lastRun'] {
  if (!Array.isArray(usage) || usage.length === 0) {
    return null;
  }
  let inputTokens = 0;
  let outputTokens = 0;
  for (const u of usage) {
    inputTokens += Number(u?.inputTokens ?? 0);
    outputTokens += Number(u?.outputTokens ?? 0);
  }
  return { inputTokens, outputTokens };
}

function custom(state: PanelState, name: string, value: Json): PanelState {
  switch (name) {
    case 'agentspace.status': {
      const status = String(value.status ?? state.status);
      const pending = status === WAITING ? state.pending : [];
      return { ...state, status, reason: value.reason ?? null, pending };
    }
    case 'agentspace.queued':
      return { ...state, queued: state.queued + 1 };
    case 'agentspace.decision':
      if (value.auto) {
        return state; // let through by a rule: never held, never pending
      }
      return {
        ...state,
        pending: state.pending.filter(p => p.toolCallId !== value.tool_call_id)
      };
    case 'agentspace.usage':
      return value.session ? { ...state, usage: usageOf(value.session) } : state;
    case 'agentspace.process':
      return typeof value.name === 'string' ? withProcess(state, value as ProcessRecord) : state;
    case 'agentspace.warning': {
      const message = typeof value.message === 'string' ? value.message : '';
      if (!message || state.warnings.includes(message)) {
        return state;
      }
      return { ...state, warnings: [...state.warnings, message].slice(-MAX_WARNINGS) };
    }
    default:
      return state;
  }
}

function withPreview(state: PanelState, value: Json): PanelState {
  const previews = addPreview(state.previews, value);
  return previews === state.previews ? state : { ...state, previews };
}

/** `previews` with one more (by port, the newest URL); the same list if `value` is not one. */
function addPreview(previews: Preview[], value: Json): Preview[] {
  const port = Number(value?.port);
  if (!Number.isInteger(port) || typeof value.url !== 'string' || !value.url) {
    return previews;
  }
  const next = previews.filter(p => p.port !== port);
  next.push({ port, url: value.url });
  next.sort((a, b) => a.port - b.port);
  return next;
}

function withProcess(state: PanelState, value: ProcessRecord): PanelState {
  const record: ProcessRecord = {
    name: value.name,
    command: String(value.command ?? ''),
    status: String(value.status ?? ''),
    exit_code: value.exit_code ?? null,
    started: Number(value.started ?? 0),
    ended: value.ended ?? null,
    log: String(value.log ?? '')
  };
  const others = (state.processes ?? []).filter(p => p.name !== record.name);
  return { ...state, processes: sortProcesses([...others, record]) };
}

// -- helpers -----------------------------------------------------------------------------

function entry(folder: string, e: FileEntry): Entry {
  const name = e.path.split('/').pop() || e.path;
  const path = folder === ROOT || folder === '' ? e.path : `${folder}/${e.path}`;
  return { name, path, kind: e.kind, size: e.size ?? null, target: e.target ?? null };
}

function sortProcesses(processes: ProcessRecord[]): ProcessRecord[] {
  return [...processes].sort((a, b) => a.started - b.started || a.name.localeCompare(b.name));
}

function toggle(list: string[], item: string): string[] {
  return list.includes(item) ? list.filter(x => x !== item) : [...list, item];
}

function without(busy: PanelState['busy'], key: string): PanelState['busy'] {
  const next = { ...busy };
  delete next[key];
  return next;
}

function callOf(key: string): string | null {
  return key.startsWith('decide:') ? key.slice('decide:'.length) : null;
}

function withCallError(pending: PendingCall[], key: string, error: string | null): PendingCall[] {
  const id = callOf(key);
  if (id === null || !pending.some(p => p.toolCallId === id)) {
    return pending;
  }
  return pending.map(p => (p.toolCallId === id ? { ...p, error } : p));
}
