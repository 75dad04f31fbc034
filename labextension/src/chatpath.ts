/**
 * Which agent chat a control is in, and which session a chat's file names: plain DOM and JSON,
 * apart from the plugin (stop.ts) so jest tests them without JupyterLab.
 */

/** The path of the chat whose widget holds ``target`` (null: not found). */
export function chatPathAt(target: Element, mainWidgets: Iterable<{ node: HTMLElement }>): string | null {
  const side = target.closest('.jp-chat-sidepanel-widget');
  if (side) {
    const title = side.querySelector('.jp-chat-sidepanel-widget-title');
    const name = title?.getAttribute('title') || title?.textContent || '';
    return name ? (name.endsWith('.chat') ? name : `${name}.chat`) : null;
  }
  for (const widget of mainWidgets) {
    if (widget.node.contains(target)) {
      const path = (widget as any).context?.path;
      return typeof path === 'string' ? path : null;
    }
  }
  return null;
}

/** The session an agent chat's file names (null: not an agent chat). */
export function sessionOf(chatFile: string): string | null {
  try {
    const session = JSON.parse(chatFile)?.metadata?.agentspace?.session;
    return typeof session === 'string' && session ? session : null;
  } catch {
    return null;
  }
}
