/**
 * The agent panel's view of the session's workspace: its files, its background processes
 * and the previews of the servers it started.
 *
 * Files are a tree listed one folder at a time (a folder is listed when first opened); a
 * file opens in a new tab from its files URL (the server serves it with a sandboxing CSP,
 * so workspace HTML never runs with the page's rights) or downloads. Processes show their
 * status, and their last output while expanded (the controller polls it); Stop while one
 * runs, Restart always (the server stops a running one first, then starts its command again).
 */

import { PanelActions } from './actions';
import { button, clear, cls, el, Keyed, link, show } from './dom';
import { processStatusText, sizeText } from './format';
import { Entry, PanelState, Preview, ROOT } from './state';
import { ProcessRecord } from './types';

export class PreviewsView {
  readonly node = el('div', 'previews');
  private readonly empty = el('div', 'previews-none', 'No preview yet.');
  private readonly list = el('ul', 'preview-list');
  private readonly items: Keyed<Preview, HTMLLIElement>;

  constructor() {
    this.node.append(el('h3', 'heading', 'Previews'), this.empty, this.list);
    this.items = new Keyed(
      this.list,
      p => String(p.port),
      () => el('li', 'preview-item'),
      (li, p) => {
        clear(li);
        const a = link('preview', `port ${p.port}`, p.url);
        a.dataset.port = String(p.port);
        a.title = p.url;
        li.append(a, el('span', 'preview-url', p.url));
      }
    );
  }

  render(state: PanelState): void {
    show(this.empty, state.previews.length === 0);
    this.items.render(state.previews);
  }
}

interface ProcessCard extends HTMLDivElement {
  parts: {
    toggle: HTMLButtonElement;
    status: HTMLElement;
    command: HTMLElement;
    stop: HTMLButtonElement;
    restart: HTMLButtonElement;
    output: HTMLPreElement;
    error: HTMLElement;
  };
}

export class ProcessesView {
  readonly node = el('div', 'processes');
  private readonly note = el('div', 'processes-none');
  private readonly list = el('div', 'process-list');
  private readonly cards: Keyed<ProcessRecord, ProcessCard>;
  private state: PanelState | null = null;

  constructor(private readonly actions: PanelActions) {
    const heading = el('h3', 'heading', 'Processes');
    heading.append(button('processes-refresh', '↻', () => actions.refreshProcesses()));
    this.node.append(heading, this.note, this.list);
    this.cards = new Keyed(
      this.list,
      p => p.name,
      p => this.card(p),
      (card, p) => this.update(card, p)
    );
  }

  render(state: PanelState): void {
    this.state = state;
    const none = state.processes !== null && state.processes.length === 0;
    const note = state.processesError ?? (state.processes === null ? 'Loading…' : none ? 'No background process.' : '');
    this.note.textContent = note;
    this.note.classList.toggle(cls('section-error'), state.processesError !== null);
    show(this.note, Boolean(note));
    this.cards.render(state.processes ?? []);
  }

  private card(p: ProcessRecord): ProcessCard {
    const card = el('div', 'process') as ProcessCard;
    card.dataset.name = p.name;
    const name = p.name;
    card.parts = {
      toggle: button('process-toggle', '', () => this.actions.toggleProcess(name)),
      status: el('span', 'process-status'),
      command: el('code', 'process-command'),
      stop: button('process-stop', 'Stop', () => this.actions.stopProcess(name)),
      restart: button('process-restart', 'Restart', () => this.actions.restartProcess(name)),
      output: el('pre', 'process-output'),
      error: el('div', 'process-error')
    };
    const { toggle, status, command, stop, restart, output, error } = card.parts;
    restart.title = 'Start it again with the same command (stopped first if it runs)';
    const head = el('div', 'process-head');
    head.append(toggle, status, stop, restart);
    card.append(head, command, output, error);
    return card;
  }

  private update(card: ProcessCard, p: ProcessRecord): void {
    const state = this.state;
    const open = state?.expandedProcesses.includes(p.name) ?? false;
    const { toggle, status, command, stop, restart, output, error } = card.parts;
    toggle.textContent = `${open ? '▾' : '▸'} ${p.name}`;
    toggle.setAttribute('aria-expanded', String(open));
    status.textContent = processStatusText(p.status, p.exit_code);
    card.dataset.status = p.status;
    command.textContent = p.command;
    show(stop, p.status === 'running');
    const busy = Boolean(state?.busy[`process:${p.name}`]);
    stop.disabled = busy;
    restart.disabled = busy;
    const shown = state?.outputs[p.name];
    show(output, open);
    if (open) {
      const text = shown?.text ?? 'Loading…';
      if (output.textContent !== text) {
        const atEnd = output.scrollTop + output.clientHeight >= output.scrollHeight - 4;
        output.textContent = text;
        if (atEnd) {
          output.scrollTop = output.scrollHeight; // follow the output unless scrolled up
        }
      }
    }
    error.textContent = open ? (shown?.error ?? '') : '';
    show(error, Boolean(error.textContent));
  }
}

export class FilesView {
  readonly node = el('div', 'files');
  private readonly tree = el('ul', 'files-tree');

  constructor(private readonly actions: PanelActions) {
    const heading = el('h3', 'heading', 'Workspace files');
    heading.append(button('files-refresh', '↻', () => actions.refreshFiles()));
    this.node.append(heading, this.tree);
  }

  render(state: PanelState): void {
    // redrawn whole (it holds no input); the folder toggle that had the focus gets it back
    const active = document.activeElement as HTMLElement | null;
    const toggled = active?.classList.contains(cls('folder-toggle')) && this.tree.contains(active);
    const refocus = toggled ? active?.parentElement?.dataset.path : undefined;
    clear(this.tree);
    const root = state.folders[ROOT];
    if (!root) {
      this.tree.append(el('li', 'files-none', state.sessionId ? 'Loading…' : ''));
      return;
    }
    this.fill(this.tree, ROOT, state);
    if (refocus !== undefined) {
      for (const li of Array.from(this.tree.querySelectorAll<HTMLElement>(`.${cls('folder')}`))) {
        if (li.dataset.path === refocus) {
          li.querySelector<HTMLElement>(`.${cls('folder-toggle')}`)?.focus();
        }
      }
    }
  }

  private fill(list: HTMLElement, path: string, state: PanelState): void {
    const folder = state.folders[path];
    if (!folder) {
      list.append(el('li', 'files-none', 'Loading…'));
      return;
    }
    if (folder.error) {
      list.append(el('li', 'section-error', folder.error));
    }
    if (folder.entries.length === 0 && !folder.error) {
      list.append(el('li', 'files-none', path === ROOT ? 'The workspace is empty.' : '(empty)'));
    }
    for (const entry of folder.entries) {
      list.append(entry.kind === 'dir' ? this.folder(entry, state) : this.file(entry));
    }
    if (folder.truncated) {
      list.append(el('li', 'files-none', '… more entries not listed'));
    }
  }

  private folder(entry: Entry, state: PanelState): HTMLLIElement {
    const open = state.expandedFolders.includes(entry.path);
    const li = el('li', 'folder');
    li.dataset.path = entry.path;
    const toggle = button('folder-toggle', `${open ? '▾' : '▸'} ${entry.name}/`, () =>
      this.actions.toggleFolder(entry.path)
    );
    toggle.setAttribute('aria-expanded', String(open));
    li.append(toggle);
    if (open) {
      const children = el('ul', 'files-tree');
      this.fill(children, entry.path, state);
      li.append(children);
    }
    return li;
  }

  private file(entry: Entry): HTMLLIElement {
    const li = el('li', 'file');
    li.dataset.path = entry.path;
    if (entry.kind === 'symlink') {
      li.append(el('span', 'file-name', `${entry.name} → ${entry.target ?? '?'}`));
      return li;
    }
    if (entry.kind !== 'file') {
      li.append(el('span', 'file-name', entry.name));
      return li;
    }
    const url = this.actions.fileUrl(entry.path);
    const open = link('open', entry.name, url);
    open.title = `Open ${entry.path} in a new tab`;
    const download = link('download', '⤓', url);
    download.removeAttribute('target'); // saved, not shown
    download.download = entry.name;
    download.title = `Download ${entry.path}`;
    download.setAttribute('aria-label', `Download ${entry.path}`);
    li.append(open, el('span', 'file-size', sizeText(entry.size)), download);
    return li;
  }
}
