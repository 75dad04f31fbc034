/**
 * The agent panel's controller: the one place that talks to the server for the panel.
 *
 * It holds the state (changed only through the reducer), finds or creates the current
 * notebook's session, follows its event stream from the last seq it has (after the info's
 * `last_seq` when the info lists the previews), fetches again what an event made stale (the
 * info, the files, the processes), fetches the models to pick from once it connects, polls
 * the output of an expanded running process, and carries out the view's actions. It works only while the panel is
 * shown: a notebook merely opened, with the panel closed, gets no session from it.
 *
 * A late answer is dropped: the session's and the stream's when the notebook changed or the
 * panel hid (a generation number), a request's when the session is no longer the current one.
 */

import { DecideOptions, PanelActions } from './actions';
import { AgentspaceApi, reasonOf } from './api';
import {
  Action,
  decideKey,
  effects,
  incomplete,
  initialState,
  PanelState,
  reduce,
  ROOT
} from './state';
import { AgUiEvent } from './types';

const BACKOFF_FIRST_MS = 1000;
const BACKOFF_MAX_MS = 30_000;
const REFETCH_MS = 250; // events come in bursts: one fetch for a burst
const OUTPUT_POLL_MS = 2000;
const OUTPUT_TAIL = 200;
const INCOMPLETE_MS = 500;
const INCOMPLETE_TRIES = 10;

type Refetch = 'info' | 'files' | 'processes';

export class PanelController implements PanelActions {
  private state: PanelState = initialState();
  private generation = 0;
  private active = false;
  private stream: { close(): void } | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private backoff = BACKOFF_FIRST_MS;
  private pollTimer: ReturnType<typeof setInterval> | null = null;
  private readonly refetchTimers = new Map<Refetch, ReturnType<typeof setTimeout>>();
  private connecting = false;
  private incompleteTries = 0;

  constructor(
    private readonly api: AgentspaceApi,
    private readonly changed: (state: PanelState) => void
  ) {}

  get current(): PanelState {
    return this.state;
  }

  /** The current notebook's path (null: none is open). */
  setNotebook(path: string | null): void {
    if (path === this.state.notebook) {
      return;
    }
    this.halt();
    this.dispatch({ type: 'notebook', path });
    if (this.active) {
      this.start();
    }
  }

  /** Whether the panel is shown: it connects when shown and lets go when hidden. */
  setActive(active: boolean): void {
    if (active === this.active) {
      return;
    }
    this.active = active;
    if (active) {
      this.start();
    } else {
      this.halt();
    }
  }

  dispose(): void {
    this.active = false;
    this.halt();
  }

  // -- connecting ------------------------------------------------------------------------

  private start(): void {
    if (this.state.notebook === null) {
      return;
    }
    this.backoff = BACKOFF_FIRST_MS;
    void this.connect();
    this.pollTimer = setInterval(() => this.pollOutputs(), OUTPUT_POLL_MS);
  }

  /** Stop everything in flight (the state stays, to be shown again and resumed). */
  private halt(): void {
    this.generation++;
    this.stream?.close();
    this.stream = null;
    this.connecting = false;
    if (this.retryTimer !== null) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
    if (this.pollTimer !== null) {
      clearInterval(this.pollTimer);
      this.pollTimer = null;
    }
    for (const timer of this.refetchTimers.values()) {
      clearTimeout(timer);
    }
    this.refetchTimers.clear();
  }

  /** Find or create the session (idempotent), then follow its events from the last seq. */
  private async connect(): Promise<void> {
    const notebook = this.state.notebook;
    if (notebook === null || this.connecting) {
      return;
    }
    this.connecting = true;
    const generation = this.generation;
    try {
      const info = await this.api.openSession(notebook);
      if (generation !== this.generation) {
        return;
      }
      this.dispatch({ type: 'info', info });
      this.follow(info.id);
      this.refetch('files', 0);
      this.refetch('processes', 0);
      void this.loadModels(generation);
    } catch (error) {
      if (generation !== this.generation) {
        return;
      }
      this.dispatch({ type: 'offline', message: reasonOf(error) });
      this.retry();
    } finally {
      if (generation === this.generation) {
        this.connecting = false;
      }
    }
  }

  private follow(sessionId: string): void {
    this.stream?.close();
    const generation = this.generation;
    this.stream = this.api.stream(sessionId, this.state.lastSeq, {
      open: () => {
        if (generation === this.generation) {
          this.backoff = BACKOFF_FIRST_MS;
        }
      },
      event: (seq, event) => {
        if (generation === this.generation) {
          this.onEvent(sessionId, seq, event);
        }
      },
      error: () => {
        if (generation === this.generation) {
          this.stream = null;
          this.retry(); // the session again (is the server there?), then the stream
        }
      }
    });
  }

  private retry(): void {
    if (!this.active || this.retryTimer !== null) {
      return;
    }
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.connect();
    }, delay);
  }

  private onEvent(sessionId: string, seq: number, event: AgUiEvent): void {
    const wanted = effects(this.state, sessionId, seq, event);
    this.dispatch({ type: 'event', sessionId, seq, event });
    if (wanted.info) {
      this.refetch('info');
    }
    if (wanted.files) {
      this.refetch('files');
    }
    if (wanted.processes) {
      this.refetch('processes');
    }
  }

  // -- fetching again ----------------------------------------------------------------------

  private refetch(what: Refetch, delay = REFETCH_MS): void {
    if (this.refetchTimers.has(what)) {
      return;
    }
    const generation = this.generation;
    this.refetchTimers.set(
      what,
      setTimeout(() => {
        this.refetchTimers.delete(what);
        if (generation !== this.generation) {
          return;
        }
        if (what === 'info') {
          void this.loadInfo();
        } else if (what === 'files') {
          for (const folder of [ROOT, ...this.state.expandedFolders]) {
            void this.loadFolder(folder);
          }
        } else {
          void this.loadProcesses();
        }
      }, delay)
    );
  }

  /**
   * Run `work` for the current session; its result is dropped if the session changed (not
   * if the panel was hidden meanwhile: the state is kept, and a request must not stay busy).
   */
  private async forSession<T>(
    work: (id: string) => Promise<T>,
    done: (result: T) => Action | null,
    failed: (message: string) => Action | null
  ): Promise<boolean> {
    const id = this.state.sessionId;
    if (id === null) {
      return false;
    }
    let action: Action | null;
    let ok = true;
    try {
      action = done(await work(id));
    } catch (error) {
      ok = false;
      action = failed(reasonOf(error));
    }
    if (id === this.state.sessionId && action) {
      this.dispatch(action);
    }
    return ok;
  }

  private loadInfo(): Promise<boolean> {
    // a failure here is the stream's to notice (it reconnects and says so)
    return this.forSession(id => this.api.session(id), info => ({ type: 'info', info }), () => null);
  }

  /** The models to offer (a failure leaves the list as it was: free text still works). */
  private async loadModels(generation: number): Promise<void> {
    try {
      const status = await this.api.status();
      if (generation === this.generation && status.models) {
        this.dispatch({ type: 'models', choices: status.models });
      }
    } catch (error) {
      console.warn('agentspace: no models to offer:', reasonOf(error));
    }
  }

  private loadFolder(path: string): Promise<boolean> {
    return this.forSession(
      id => this.api.files(id, path),
      listing => ({ type: 'folder', listing: { ...listing, path } }),
      message => ({ type: 'folderFailed', path, message })
    );
  }

  private loadProcesses(): Promise<boolean> {
    return this.forSession(
      id => this.api.processes(id),
      reply => ({ type: 'processes', processes: reply.processes }),
      message => ({ type: 'processesFailed', message: `Processes: ${message}` })
    );
  }

  private loadOutput(name: string): Promise<boolean> {
    return this.forSession(
      id => this.api.output(id, name, OUTPUT_TAIL),
      reply => ({ type: 'output', name, output: reply.output }),
      message => ({ type: 'outputFailed', name, message })
    );
  }

  private pollOutputs(): void {
    const running = new Set(
      (this.state.processes ?? []).filter(p => p.status === 'running').map(p => p.name)
    );
    for (const name of this.state.expandedProcesses) {
      if (running.has(name)) {
        void this.loadOutput(name); // an ended process's output was fetched when it ended
      }
    }
  }

  // -- the view's actions -------------------------------------------------------------------

  /** A request the user made: busy while in flight, its error shown if it fails. */
  private async request<T>(
    key: string,
    label: string,
    work: (id: string) => Promise<T>,
    done?: (result: T) => Action | null
  ): Promise<void> {
    if (this.state.busy[key] || this.state.sessionId === null) {
      return;
    }
    this.dispatch({ type: 'requestStarted', key });
    const ok = await this.forSession(
      work,
      result => done?.(result) ?? { type: 'requestDone', key },
      message => ({ type: 'requestFailed', key, message: `${label}: ${message}` })
    );
    if (ok && done) {
      this.dispatch({ type: 'requestDone', key });
    }
    // after a refusal too: a 409 means another view got there first, and the info says how
    this.refetch('info', 0);
  }

  setModel(model: string): void {
    void this.request('model', 'Model', id => this.api.setModel(id, model), info => ({
      type: 'info',
      info
    }));
  }

  stop(): void {
    void this.request('stop', 'Stop', id => this.api.stop(id));
  }

  resume(): void {
    void this.request('resume', 'Resume', id => this.api.resume(id));
  }

  decide(toolCallId: string, decision: 'approve' | 'reject', options: DecideOptions = {}): void {
    const call = this.state.pending.find(p => p.toolCallId === toolCallId);
    const what = decision === 'reject' ? 'Reject' : options.remember ? 'Always allow' : 'Approve';
    const label = call ? `${what} ${call.tool}` : what;
    const body = { decision, ...options };
    void this.request(decideKey(toolCallId), label, id => this.api.decide(id, toolCallId, body));
  }

  dismissError(): void {
    this.dispatch({ type: 'dismissError' });
  }

  toggleFolder(path: string): void {
    this.dispatch({ type: 'toggleFolder', path });
    if (this.state.expandedFolders.includes(path)) {
      void this.loadFolder(path); // listed afresh each time it opens
    }
  }

  refreshFiles(): void {
    this.refetch('files', 0);
  }

  fileUrl(path: string): string {
    return this.state.sessionId ? this.api.fileUrl(this.state.sessionId, path) : '#';
  }

  toggleProcess(name: string): void {
    this.dispatch({ type: 'toggleProcess', name });
    if (this.state.expandedProcesses.includes(name)) {
      void this.loadOutput(name);
    }
  }

  stopProcess(name: string): void {
    const key = `process:${name}`;
    void this.request(key, `Stop ${name}`, id => this.api.stopProcess(id, name)).then(() => {
      this.refetch('processes', 0);
      if (this.state.expandedProcesses.includes(name)) {
        void this.loadOutput(name);
      }
    });
  }

  restartProcess(name: string): void {
    const key = `process:${name}`;
    void this.request(key, `Restart ${name}`, id => this.api.restartProcess(id, name)).then(() => {
      this.refetch('processes', 0);
      if (this.state.expandedProcesses.includes(name)) {
        void this.loadOutput(name);
      }
    });
  }

  refreshProcesses(): void {
    this.refetch('processes', 0);
  }

  // -- state ----------------------------------------------------------------------------------

  private dispatch(action: Action): void {
    const next = reduce(this.state, action);
    if (next === this.state) {
      return;
    }
    const ended = endedProcesses(this.state, next);
    this.state = next;
    this.changed(next);
    for (const name of ended) {
      void this.loadOutput(name); // its last lines, once
    }
    if (action.type === 'info') {
      // an info taken as a run paused may list no call yet: ask again, a few times
      const again = incomplete(next) && this.incompleteTries < INCOMPLETE_TRIES;
      this.incompleteTries = again ? this.incompleteTries + 1 : 0;
      if (again) {
        this.refetch('info', INCOMPLETE_MS);
      }
    }
  }
}

/** Expanded processes that were running in `before` and are not in `after`. */
function endedProcesses(before: PanelState, after: PanelState): string[] {
  if (before.processes === after.processes || before.processes === null) {
    return [];
  }
  return after.expandedProcesses.filter(name => {
    const was = before.processes?.find(p => p.name === name);
    const now = after.processes?.find(p => p.name === name);
    return was?.status === 'running' && now !== undefined && now.status !== 'running';
  });
}
