/**
 * The chat's own Stop button, for agent chats: jupyterlab-chat 0.25 draws a Stop button in the
 * chat's input while a bot user writes (ours says it writes while a run streams), but its click
 * only logs. So a click on it in one of our chats stops the session's run here, keeping what the
 * agent wrote, as the notebook's Stop does.
 *
 * Which session: the chat's file names it (its metadata's `agentspace.session`, written by the
 * server when it made the chat); the file is found from the chat widget the button is in (the
 * side panel's title is the chat's path without `.chat`; a chat in the main area is a document
 * with a path). A chat that is not an agent chat is left to jupyterlab-chat.
 */

import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { showErrorMessage } from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';

import { Post, serverPost } from './api';
import { chatPathAt, sessionOf } from './chatpath';

const STOP_BUTTON = '.jp-chat-stop-button';

async function stop(app: JupyterFrontEnd, post: Post, path: string): Promise<void> {
  let session: string | null = null;
  try {
    const file = await app.serviceManager.contents.get(path, { type: 'file', format: 'text', content: true });
    session = sessionOf(String(file.content ?? ''));
  } catch {
    return; // not a file we can read: not ours to stop
  }
  if (!session) {
    return;
  }
  const reply = await post(`agentspace/api/sessions/${encodeURIComponent(session)}/stop`, {});
  if (!reply.ok) {
    const message = typeof reply.body?.message === 'string' ? reply.body.message : `HTTP ${reply.status}`;
    await showErrorMessage('Could not stop the agent', message);
  }
}

export const stopPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-agentspace:chat-stop',
  description: "Makes the agent chat's Stop button stop the agent's run.",
  autoStart: true,
  activate: (app: JupyterFrontEnd) => {
    const settings = app.serviceManager.serverSettings ?? ServerConnection.makeSettings();
    const post = serverPost(settings, ServerConnection.makeRequest);
    document.addEventListener(
      'click',
      event => {
        const button = (event.target as Element | null)?.closest?.(STOP_BUTTON);
        if (!button || (button as HTMLButtonElement).disabled) {
          return;
        }
        const path = chatPathAt(button, app.shell.widgets('main'));
        if (path) {
          void stop(app, post, path);
        }
      },
      true
    );
  }
};
