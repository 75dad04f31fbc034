/**
 * "Open agent chat for this notebook": the notebook's agent chat (a .chat file the server
 * keeps, one per notebook, in which each tool call is a card; see renderer.ts), opened in
 * jupyterlab-chat's side panel.
 *
 * The command asks the server for the notebook's chat (`POST agentspace/api/chats`
 * `{"notebook"}` -> `{"path", "session"}`), then runs jupyterlab-chat's
 * `jupyterlab-chat:open` with `{filepath, inSidePanel: true}` (its arguments in 0.25.3;
 * without the side panel, as in a plain Notebook 7 page without it, the chat opens in the
 * main area). In the command palette, the notebook's context menu and its toolbar; the same
 * in JupyterLab 4 and Notebook 7.
 */

import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, showErrorMessage } from '@jupyterlab/apputils';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { INotebookModel, INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { LabIcon, ToolbarButton } from '@jupyterlab/ui-components';

import { Post, serverPost } from './api';

export const OPEN_CHAT_COMMAND = 'agentspace:open-chat';
const LABEL = 'Open agent chat for this notebook';
const CHAT_OPEN = 'jupyterlab-chat:open';
const CHATS_PATH = 'agentspace/api/chats';

/** A speech bubble (a constant of ours; no data goes into it). */
const chatIcon = new LabIcon({
  name: 'jupyter-agentspace:chat',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="#616161" d="M4 3h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 ' +
    '2 0 0 1-2-2V5a2 2 0 0 1 2-2zm0 2v10h2v1.8L8.3 15H20V5H4zm3 3h10v2H7V8z"/></svg>'
});

/** Ask the server for the notebook's chat and open it in the side panel. */
async function openChat(app: JupyterFrontEnd, post: Post, panel: NotebookPanel): Promise<void> {
  await app.serviceManager.ready; // jupyterlab-chat adds its open command once it is ready
  if (!app.commands.hasCommand(CHAT_OPEN)) {
    await showErrorMessage(
      'The agent chat needs jupyterlab-chat',
      'jupyterlab-chat is not installed in this Jupyter server. Install it with ' +
        '`pip install jupyterlab-chat` and restart the server, then open the agent chat again.'
    );
    return;
  }
  let reply;
  try {
    // localPath: the path relative to the server root, without a drive prefix ("RTC:")
    reply = await post(CHATS_PATH, { notebook: panel.context.localPath });
  } catch (error) {
    await showErrorMessage('Could not open the agent chat', String(error));
    return;
  }
  const path = reply.body?.path;
  if (!reply.ok || typeof path !== 'string') {
    const message = typeof reply.body?.message === 'string' ? reply.body.message : `HTTP ${reply.status}`;
    await showErrorMessage('Could not open the agent chat', message);
    return;
  }
  await app.commands.execute(CHAT_OPEN, { filepath: path, inSidePanel: true });
}

/** The notebook toolbar's button, one per panel. */
class ChatButtonExtension implements DocumentRegistry.IWidgetExtension<NotebookPanel, INotebookModel> {
  constructor(private readonly open: (panel: NotebookPanel) => void) {}

  createNew(panel: NotebookPanel): ToolbarButton {
    const button = new ToolbarButton({
      className: 'jp-agentspace-open-chat',
      icon: chatIcon,
      tooltip: LABEL,
      onClick: () => this.open(panel)
    });
    panel.toolbar.insertItem(10, 'agentspace-open-chat', button); // after the cell type, by default
    return button;
  }
}

export const chatPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-agentspace:open-chat',
  description: "Opens a notebook's agent chat (jupyterlab-chat) in the side panel.",
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker, palette: ICommandPalette | null) => {
    const settings = app.serviceManager.serverSettings ?? ServerConnection.makeSettings();
    const post = serverPost(settings, ServerConnection.makeRequest);
    const open = (panel: NotebookPanel) => {
      void openChat(app, post, panel).catch(error =>
        showErrorMessage('Could not open the agent chat', String(error))
      );
    };

    /** The notebook right-clicked (from the context menu), else the current one. */
    const target = (args: { [key: string]: unknown }): NotebookPanel | null => {
      if (args.origin === 'context-menu') {
        const node = app.contextMenuHitTest(n => n.classList.contains('jp-Notebook'));
        const panel = node ? tracker.find(p => p.content.node === node) : undefined;
        if (panel) {
          return panel;
        }
      }
      return tracker.currentWidget;
    };

    app.commands.addCommand(OPEN_CHAT_COMMAND, {
      label: LABEL,
      caption: "Open the notebook's agent chat (jupyterlab-chat) in the side panel",
      icon: chatIcon,
      isEnabled: args => target(args) !== null,
      execute: args => {
        const panel = target(args);
        if (panel) {
          open(panel);
        }
      }
    });
    app.contextMenu.addItem({
      command: OPEN_CHAT_COMMAND,
      args: { origin: 'context-menu' },
      selector: '.jp-Notebook',
      rank: 100
    });
    palette?.addItem({ command: OPEN_CHAT_COMMAND, category: 'agentspace' });
    app.docRegistry.addWidgetExtension('Notebook', new ChatButtonExtension(open));
  }
};
