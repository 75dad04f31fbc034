/**
 * jupyter-agentspace: the notebook link, "Fix with agent" and the cells the kernel asks for;
 * with the plugins of the agent chat (chat.ts: open it; renderer.ts: its tool-call cards).
 *
 * The link (docs/notebook-link.md): one WebSocket per open notebook panel, to
 * `{baseUrl}agentspace/api/notebooks/link?path=<path>`. The server sends requests (read, set,
 * insert, delete); each is answered from, or applied to, the panel's shared model in one
 * synchronous step, so a keystroke of the user's comes before or after an edit, never in
 * between. Works in JupyterLab and Notebook 7 (both have the notebook tracker).
 */

import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { Cell, CodeCell } from '@jupyterlab/cells';
import {
  INotebookTracker,
  NotebookActions,
  NotebookPanel
} from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';

import { ActiveCellNotices } from './active';
import { listenForCells } from './cells';
import { chatPlugin } from './chat';
import { panelPlugin } from './panel/plugin';
import { cardPlugin } from './renderer';

const LINK_PATH = 'agentspace/api/notebooks/link';
const FIX_COMMAND = 'agentspace:fix-with-agent';
const CELL_TYPES = ['code', 'markdown', 'raw'];
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30_000;

type Json = { [key: string]: any };

/** A failed check: the reply's `error` and `message`. */
class LinkError extends Error {
  constructor(
    readonly kind: 'conflict' | 'missing' | 'invalid',
    message: string
  ) {
    super(message);
  }
}

function indexOf(panel: NotebookPanel, cellId: unknown): number {
  const cells = panel.context.model.sharedModel.cells;
  const index = cells.findIndex(cell => cell.id === cellId);
  if (index < 0) {
    throw new LinkError('missing', `the notebook has no cell ${JSON.stringify(cellId)}`);
  }
  return index;
}

function checkSource(panel: NotebookPanel, index: number, expect: unknown): void {
  const cell = panel.context.model.sharedModel.cells[index];
  if (typeof expect !== 'string') {
    throw new LinkError('invalid', "'expect' must be a string");
  }
  if (cell.getSource() !== expect) {
    throw new LinkError('conflict', `cell ${JSON.stringify(cell.id)} changed (the user edited it)`);
  }
}

/**
 * Answer one request from the panel's document. Synchronous on purpose: every check and its
 * change happen in the same turn of the browser's event loop.
 */
export function answer(panel: NotebookPanel, request: Json): Json {
  const model = panel.context.model;
  const shared = model.sharedModel;
  switch (request.op) {
    case 'read':
      return { notebook: shared.toJSON(), dirty: model.dirty };
    case 'set': {
      if (typeof request.source !== 'string') {
        throw new LinkError('invalid', "'source' must be a string");
      }
      const index = indexOf(panel, request.cell_id);
      checkSource(panel, index, request.expect);
      shared.transact(() => shared.cells[index].setSource(request.source));
      return {};
    }
    case 'insert': {
      const cell = request.cell ?? {};
      if (!CELL_TYPES.includes(cell.cell_type)) {
        throw new LinkError('invalid', `unknown cell type ${JSON.stringify(cell.cell_type)}`);
      }
      if (typeof cell.id !== 'string' || !cell.id || typeof cell.source !== 'string') {
        throw new LinkError('invalid', "the cell needs an 'id' and a string 'source'");
      }
      if (shared.cells.some(c => c.id === cell.id)) {
        throw new LinkError('invalid', `a cell ${JSON.stringify(cell.id)} exists already`);
      }
      const after = request.index_after ?? null;
      const index = after === null ? 0 : indexOf(panel, after) + 1;
      const value: Json = {
        id: cell.id,
        cell_type: cell.cell_type,
        source: cell.source,
        metadata: {}
      };
      if (cell.cell_type === 'code') {
        value.outputs = [];
        value.execution_count = null;
      }
      shared.insertCell(index, value as any);
      return { index };
    }
    case 'delete': {
      const index = indexOf(panel, request.cell_id);
      checkSource(panel, index, request.expect);
      shared.deleteCell(index);
      return {};
    }
    default:
      throw new LinkError('invalid', `unknown op ${JSON.stringify(request.op)}`);
  }
}

/**
 * Run code the agent asked for as a cell of this notebook, where the user sees it: the cell
 * `cell_id` when its source is still the code, else a new code cell below the active one (its
 * metadata names the call). Awaits the kernel's reply; answers with the cell's outputs.
 * The server sends it once a person approved the call (server/kernelcalls.py).
 */
export async function runCell(panel: NotebookPanel, request: Json): Promise<Json> {
  if (typeof request.code !== 'string') {
    throw new LinkError('invalid', "'code' must be a string");
  }
  const shared = panel.context.model.sharedModel;
  let index = typeof request.cell_id === 'string' ? shared.cells.findIndex(c => c.id === request.cell_id) : -1;
  if (index >= 0 && (shared.cells[index].cell_type !== 'code' || shared.cells[index].getSource() !== request.code)) {
    index = -1; // edited since, or not code: the code runs in a cell of its own
  }
  if (index < 0) {
    const active = panel.content.activeCellIndex;
    index = (active >= 0 ? active : shared.cells.length - 1) + 1;
    const metadata = typeof request.tool_call_id === 'string' ? { agentspace: { tool_call_id: request.tool_call_id } } : {};
    shared.insertCell(index, { cell_type: 'code', source: request.code, metadata, outputs: [], execution_count: null } as any);
  }
  const cell = panel.content.widgets[index];
  if (!(cell instanceof CodeCell)) {
    throw new LinkError('invalid', 'the cell to run is not a code cell');
  }
  const reply = await CodeCell.execute(cell, panel.sessionContext);
  const outputs = (cell.model.sharedModel.toJSON() as Json).outputs ?? [];
  return { cell_id: cell.model.id, status: reply?.content.status ?? 'unknown', outputs };
}

/** One open notebook panel's link: connects, answers, reconnects with backoff, closes. */
class NotebookLink {
  private socket: WebSocket | null = null;
  private backoff = BACKOFF_FIRST_MS;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private disposed = false;
  private readonly active: ActiveCellNotices;

  constructor(
    private readonly panel: NotebookPanel,
    private readonly settings: ServerConnection.ISettings,
    private readonly client: string
  ) {
    panel.disposed.connect(() => this.dispose());
    panel.context.pathChanged.connect(() => this.notice({ op: 'path', path: this.path }));
    this.active = new ActiveCellNotices(
      () => panel.content.activeCell?.model.id ?? null,
      cellId => this.notice({ op: 'active', cell_id: cellId })
    );
    panel.content.activeCellChanged.connect(() => this.active.changed());
    this.connect();
  }

  /** The notebook's path relative to the server root (no drive prefix such as "RTC:"). */
  get path(): string {
    return this.panel.context.localPath;
  }

  private connect(): void {
    if (this.disposed) {
      return;
    }
    const { settings } = this;
    let url = settings.wsUrl + LINK_PATH + '?path=' + encodeURIComponent(this.path);
    if (settings.token) {
      url += '&token=' + encodeURIComponent(settings.token);
    }
    const socket = new settings.WebSocket(url);
    this.socket = socket;
    socket.onopen = () => {
      this.backoff = BACKOFF_FIRST_MS;
      this.notice({ op: 'hello', path: this.path, client: this.client });
      this.active.restart();
    };
    socket.onmessage = event => this.onMessage(event.data);
    socket.onclose = () => {
      if (this.socket === socket) {
        this.socket = null;
        this.retry();
      }
    };
  }

  private retry(): void {
    if (this.disposed || this.timer !== null) {
      return;
    }
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect();
    }, delay);
  }

  private notice(message: Json): void {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(message));
    }
  }

  private onMessage(data: unknown): void {
    let request: Json;
    try {
      request = JSON.parse(String(data));
    } catch {
      console.warn('agentspace: the notebook link got a message that is not JSON');
      return;
    }
    if (typeof request !== 'object' || request === null || request.id === undefined) {
      return;
    }
    if (request.op === 'run') {
      void runCell(this.panel, request).then(
        result => this.notice({ id: request.id, ok: true, ...result }),
        error => this.notice(failure(request.id, error))
      );
      return;
    }
    let reply: Json;
    try {
      reply = { id: request.id, ok: true, ...answer(this.panel, request) };
    } catch (error) {
      reply = failure(request.id, error);
    }
    this.notice(reply);
  }

  dispose(): void {
    if (this.disposed) {
      return;
    }
    this.disposed = true;
    this.active.dispose();
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const socket = this.socket;
    this.socket = null;
    socket?.close();
  }
}

function failure(id: unknown, error: unknown): Json {
  if (error instanceof LinkError) {
    return { id, ok: false, error: error.kind, message: error.message };
  }
  return { id, ok: false, error: 'invalid', message: String(error) };
}

function hasError(cell: Cell | null | undefined): boolean {
  if (!cell || cell.model.type !== 'code') {
    return false;
  }
  const outputs = (cell.model as any).outputs;
  for (let i = 0; i < (outputs?.length ?? 0); i++) {
    if (outputs.get(i).type === 'error') {
      return true;
    }
  }
  return false;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-agentspace:plugin',
  description: 'Links open notebooks to the agentspace server; "Fix with agent" on errors.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null
  ) => {
    const settings = app.serviceManager.serverSettings ?? ServerConnection.makeSettings();
    const client = app.name.toLowerCase().includes('notebook') ? 'notebook' : 'jupyterlab';
    const linked = new WeakSet<NotebookPanel>();
    const link = (panel: NotebookPanel) => {
      if (linked.has(panel)) {
        return;
      }
      linked.add(panel);
      void panel.context.ready.then(() => {
        if (!panel.isDisposed) {
          new NotebookLink(panel, settings, client);
          listenForCells(panel);
        }
      });
    };
    tracker.forEach(link);
    tracker.widgetAdded.connect((_, panel) => link(panel));

    /** The cell the command acts on: the one right-clicked (from the context menu), else
     * the active one; with its panel. */
    const target = (args: Json): { panel: NotebookPanel; cell: Cell } | null => {
      if (args.origin === 'context-menu') {
        const node = app.contextMenuHitTest(n => n.classList.contains('jp-Cell'));
        if (node) {
          const panel = tracker.find(p => p.content.widgets.some(c => c.node === node));
          const cell = panel?.content.widgets.find(c => c.node === node);
          if (panel && cell) {
            return { panel, cell };
          }
        }
      }
      const panel = tracker.currentWidget;
      const cell = panel?.content.activeCell;
      return panel && cell ? { panel, cell } : null;
    };

    app.commands.addCommand(FIX_COMMAND, {
      label: 'Fix with agent',
      caption: "Ask the notebook's agent to fix this cell's error (runs %agent fix <cell id>)",
      isEnabled: args => hasError(target(args)?.cell),
      execute: async args => {
        const found = target(args);
        if (!found || !hasError(found.cell)) {
          return;
        }
        const { panel, cell } = found;
        const notebook = panel.content;
        const shared = panel.context.model.sharedModel;
        const index = notebook.widgets.indexOf(cell);
        shared.insertCell(index + 1, {
          cell_type: 'code',
          source: `%agent fix ${cell.model.sharedModel.id}`,
          metadata: {}
        } as any);
        notebook.deselectAll();
        notebook.activeCellIndex = index + 1;
        // %agent needs the extension: load it first, silently (a no-op when it is loaded)
        const kernel = panel.sessionContext.session?.kernel;
        if (kernel) {
          await kernel.requestExecute({
            code: '%load_ext agentspace',
            silent: true,
            store_history: false
          }).done;
        }
        await NotebookActions.run(notebook, panel.sessionContext);
      }
    });
    app.contextMenu.addItem({
      command: FIX_COMMAND,
      args: { origin: 'context-menu' },
      selector: '.jp-Notebook .jp-CodeCell .jp-OutputArea',
      rank: 0
    });
    palette?.addItem({ command: FIX_COMMAND, category: 'agentspace' });
  }
};

export default [plugin, cardPlugin, chatPlugin, panelPlugin];
