/**
 * Cells the kernel asks for: the approval cell of a call that paused a run after a button
 * decision.
 *
 * A run that pauses while a cell runs gets its `%%approve ID` cell from IPython's
 * `set_next_input` payload. A run resumed by a widget button runs with no cell executing,
 * so when it pauses again there is no payload to carry the next call's cell; the kernel
 * then sends a display message of the mime type below instead, naming the `%%agent` cell
 * it belongs to. This listener inserts the cell right below that one, unless a cell for
 * the same call is already in the notebook (one cell per call, ever).
 */

import { NotebookPanel } from '@jupyterlab/notebook';
import { KernelMessage } from '@jupyterlab/services';

export const CELL_MIME = 'application/vnd.agentspace.cell+json';

const DECIDING = ['%%approve', '%reject', '%%agent_run'];

type CellRequest = { after?: string | null; source?: string; call?: string };

/** The call id a cell's first line decides (`%%approve ID`, `%reject ID ...`), or null. */
export function decidedCall(source: string): string | null {
  const words = source.trimStart().split('\n', 1)[0].trim().split(/\s+/);
  return words.length >= 2 && DECIDING.includes(words[0]) ? words[1] : null;
}

/** Insert the requested cell (see the module doc); true if it was inserted. */
export function insertRequested(panel: NotebookPanel, request: CellRequest): boolean {
  const shared = panel.context.model.sharedModel;
  if (typeof request.source !== 'string' || typeof request.call !== 'string') {
    return false;
  }
  if (shared.cells.some(c => decidedCall(c.getSource()) === request.call)) {
    return false;
  }
  const at = shared.cells.findIndex(c => c.id === request.after);
  let index = at < 0 ? shared.cells.length : at + 1;
  while (index < shared.cells.length && decidedCall(shared.cells[index].getSource()) !== null) {
    index++; // after the approval cells this run already has, in their order
  }
  shared.insertCell(index, {
    cell_type: 'code',
    source: request.source,
    metadata: {}
  } as any);
  return true;
}

/** Listen to the panel's kernel for cell requests. */
export function listenForCells(panel: NotebookPanel): void {
  panel.sessionContext.iopubMessage.connect((_, msg: KernelMessage.IMessage) => {
    const type = msg.header.msg_type;
    if (type !== 'display_data' && type !== 'update_display_data') {
      return;
    }
    const data = (msg.content as KernelMessage.IDisplayDataMsg['content']).data;
    const request = data?.[CELL_MIME] as CellRequest | undefined;
    if (request && typeof request === 'object') {
      insertRequested(panel, request);
    }
  });
}
