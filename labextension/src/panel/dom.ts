/**
 * Small DOM helpers for the agent panel: elements with a class and text, buttons, and a
 * keyed list that keeps each item's element (and what the user typed into it) between
 * renders.
 *
 * Everything the server sends is put in the page with `textContent` or attributes, never
 * parsed as HTML: a file name, a diff or a process's output cannot inject markup.
 */

export const PREFIX = 'jp-agentspace-panel';

/** `jp-agentspace-panel-<suffix>` ('' gives the prefix itself). */
export function cls(suffix: string): string {
  return suffix ? `${PREFIX}-${suffix}` : PREFIX;
}

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  suffix: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (suffix) {
    node.className = cls(suffix);
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

export function button(suffix: string, label: string, onClick: () => void): HTMLButtonElement {
  const node = el('button', suffix, label);
  node.type = 'button';
  node.classList.add('jp-mod-styled');
  node.addEventListener('click', event => {
    event.preventDefault();
    onClick();
  });
  return node;
}

/** A link that opens in a new tab without giving the page a handle on this one. */
export function link(suffix: string, label: string, href: string): HTMLAnchorElement {
  const node = el('a', suffix, label);
  node.href = href;
  node.target = '_blank';
  node.rel = 'noopener noreferrer';
  return node;
}

export function clear(node: Element): void {
  while (node.firstChild) {
    node.removeChild(node.firstChild);
  }
}

export function show(node: HTMLElement, visible: boolean): void {
  node.hidden = !visible;
}

/**
 * The children of `parent` as one element per item, in order: an item's element is made
 * once (`create`) and updated on each render (`update`), so focus and typed text survive.
 */
export class Keyed<T, E extends HTMLElement> {
  private readonly nodes = new Map<string, E>();

  constructor(
    private readonly parent: HTMLElement,
    private readonly key: (item: T) => string,
    private readonly create: (item: T) => E,
    private readonly update: (node: E, item: T) => void
  ) {}

  render(items: readonly T[]): void {
    const seen = new Set<string>();
    let cursor: ChildNode | null = this.parent.firstChild;
    for (const item of items) {
      const key = this.key(item);
      seen.add(key);
      let node = this.nodes.get(key);
      if (!node) {
        node = this.create(item);
        this.nodes.set(key, node);
      }
      this.update(node, item);
      if (node !== cursor) {
        this.parent.insertBefore(node, cursor);
      } else {
        cursor = cursor.nextSibling;
      }
    }
    for (const [key, node] of this.nodes) {
      if (!seen.has(key)) {
        node.remove();
        this.nodes.delete(key);
      }
    }
  }
}
