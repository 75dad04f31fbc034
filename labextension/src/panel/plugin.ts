/**
 * The agent side panel's plugin: a right-sidebar widget ("Agent") showing the session of the
 * current notebook (the notebook tracker's current widget; in Notebook 7 the open notebook).
 *
 * The widget tells the controller when it is shown or hidden (it connects only while shown)
 * and which notebook is current, and hands its node to the view; nothing else lives here.
 */

import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';
import type { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { AgentspaceApi } from './api';
import { PanelController } from './controller';
import { PanelView } from './view';

const PANEL_ID = 'jp-agentspace-panel';
const SHOW_COMMAND = 'agentspace:show-panel';
const RANK = 600;

export const agentIcon = new LabIcon({
  name: 'jupyter-agentspace:agent',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
    '<g class="jp-icon3" fill="#616161">' +
    '<path d="M11 2h2v3h-2z"/>' +
    '<path d="M6 6h12a3 3 0 0 1 3 3v8a3 3 0 0 1-3 3H6a3 3 0 0 1-3-3V9a3 3 0 0 1 3-3zm0 2a1 1 0 0 0' +
    '-1 1v8a1 1 0 0 0 1 1h12a1 1 0 0 0 1-1V9a1 1 0 0 0-1-1z"/>' +
    '<circle cx="9" cy="12.5" r="1.5"/><circle cx="15" cy="12.5" r="1.5"/>' +
    '</g></svg>'
});

/** The sidebar widget: its visibility drives the controller; each change is drawn once per frame. */
class AgentPanel extends Widget {
  readonly controller: PanelController;
  private readonly view: PanelView;
  private frame: number | null = null;

  constructor(api: AgentspaceApi) {
    super();
    this.id = PANEL_ID;
    this.title.icon = agentIcon;
    this.title.label = 'Agent';
    this.title.caption = 'Agent';
    this.node.tabIndex = -1;
    this.controller = new PanelController(api, () => this.schedule());
    this.view = new PanelView(this.node, this.controller);
    this.view.render(this.controller.current);
  }

  private schedule(): void {
    if (this.frame !== null) {
      return;
    }
    this.frame = requestAnimationFrame(() => {
      this.frame = null;
      this.view.render(this.controller.current);
    });
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this.controller.setActive(this.isVisible);
  }

  protected onBeforeDetach(msg: Message): void {
    this.controller.setActive(false);
    super.onBeforeDetach(msg);
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.controller.setActive(true);
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this.controller.setActive(false);
  }

  protected onActivateRequest(msg: Message): void {
    super.onActivateRequest(msg);
    this.node.focus();
  }

  dispose(): void {
    if (this.frame !== null) {
      cancelAnimationFrame(this.frame);
      this.frame = null;
    }
    this.controller.dispose();
    super.dispose();
  }
}

export const panelPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-agentspace:panel',
  description: "A right-sidebar panel with the current notebook's agent session.",
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILayoutRestorer, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null
  ) => {
    const settings = app.serviceManager.serverSettings ?? ServerConnection.makeSettings();
    const panel = new AgentPanel(new AgentspaceApi(settings));
    const current = () => {
      panel.controller.setNotebook(tracker.currentWidget?.context.localPath ?? null);
    };
    const follow = (notebook: NotebookPanel) => {
      // a rename keeps the session: the panel asks again under the new path
      notebook.context.pathChanged.connect(() => {
        if (tracker.currentWidget === notebook) {
          current();
        }
      });
    };
    tracker.forEach(follow);
    tracker.widgetAdded.connect((_, notebook) => follow(notebook));
    tracker.currentChanged.connect(current);
    current();

    app.shell.add(panel, 'right', { rank: RANK });
    restorer?.add(panel, PANEL_ID);

    app.commands.addCommand(SHOW_COMMAND, {
      label: 'Show the agent panel',
      caption: "The current notebook's agent: status, approvals, workspace files, processes",
      execute: () => app.shell.activateById(PANEL_ID)
    });
    palette?.addItem({ command: SHOW_COMMAND, category: 'agentspace' });
  }
};
