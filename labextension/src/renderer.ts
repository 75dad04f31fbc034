/**
 * The rendermime renderer of tool-call cards (application/vnd.agentspace.toolcall+json).
 *
 * jupyterlab-chat renders a message's mime_model with the app's IRenderMimeRegistry, picking
 * the mime type with preferredMimeType(data, 'ensure'): only safe factories count, so this one
 * is `safe: true` (card.ts builds its DOM from text only; no HTML is ever parsed from data).
 * The same renderer shows such data in a notebook's outputs.
 */

import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { PageConfig } from '@jupyterlab/coreutils';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { serverPost } from './api';
import { CardApi, renderCard } from './card';
import { RUN_MIME, renderRun } from './runcard';
import { TOOLCALL_MIME } from './toolcall';

class ToolCallRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(private readonly api: CardApi) {
    super();
  }

  renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    if (RUN_MIME in model.data) {
      renderRun(this.node, model.data[RUN_MIME], this.api);
    } else {
      renderCard(this.node, model.data[TOOLCALL_MIME], this.api);
    }
    return Promise.resolve();
  }
}

export const cardPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-agentspace:toolcall-card',
  description: 'Shows agent tool calls (in the agent chat) as cards with approval buttons.',
  autoStart: true,
  requires: [IRenderMimeRegistry],
  activate: (app: JupyterFrontEnd, registry: IRenderMimeRegistry) => {
    const settings = app.serviceManager.serverSettings ?? ServerConnection.makeSettings();
    const api: CardApi = {
      baseUrl: PageConfig.getBaseUrl(),
      post: serverPost(settings, ServerConnection.makeRequest)
    };
    registry.addFactory(
      {
        safe: true,
        mimeTypes: [TOOLCALL_MIME, RUN_MIME],
        defaultRank: 50,
        createRenderer: () => new ToolCallRenderer(api)
      },
      50
    );
  }
};
