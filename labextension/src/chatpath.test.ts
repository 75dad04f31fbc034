/** Which chat a Stop button is in, and which session an agent chat's file names. */

import { chatPathAt, sessionOf } from './chatpath';

describe('the chat Stop button', () => {
  it('finds the side panel chat by its title', () => {
    document.body.innerHTML =
      '<div class="jp-chat-sidepanel-widget"><span class="jp-chat-sidepanel-widget-title" ' +
      'title="agent-chats/a/b">agent-chats/a/b</span><button class="jp-chat-stop-button"></button></div>';
    const button = document.querySelector('.jp-chat-stop-button') as Element;
    expect(chatPathAt(button, [])).toBe('agent-chats/a/b.chat');
  });

  it('finds a main-area chat by its document path', () => {
    document.body.innerHTML = '<div id="doc"><button class="jp-chat-stop-button"></button></div>';
    const node = document.getElementById('doc') as HTMLElement;
    const widget = { node, context: { path: 'agent-chats/c.chat' } };
    const button = document.querySelector('.jp-chat-stop-button') as Element;
    expect(chatPathAt(button, [widget])).toBe('agent-chats/c.chat');
    expect(chatPathAt(button, [])).toBeNull();
  });

  it("reads the session from an agent chat's file, and nothing from another chat", () => {
    const ours = JSON.stringify({ messages: [], metadata: { id: 'x', agentspace: { session: 's1' } } });
    expect(sessionOf(ours)).toBe('s1');
    expect(sessionOf(JSON.stringify({ messages: [], metadata: { id: 'y' } }))).toBeNull();
    expect(sessionOf('not json')).toBeNull();
  });
});
