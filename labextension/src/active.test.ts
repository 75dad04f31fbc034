/** The `active` notices: coalesced to one per interval, deduplicated, resent after hello. */

import { ActiveCellNotices } from './active';

describe('ActiveCellNotices', () => {
  let now = 0;
  let current: string | null = 'a';
  let sent: (string | null)[] = [];
  let notices: ActiveCellNotices;

  beforeEach(() => {
    jest.useFakeTimers();
    now = 1000;
    current = 'a';
    sent = [];
    notices = new ActiveCellNotices(() => current, id => sent.push(id), 200, () => now);
  });
  afterEach(() => {
    notices.dispose();
    jest.useRealTimers();
  });
  const advance = (ms: number) => {
    now += ms;
    jest.advanceTimersByTime(ms);
  };

  test('sends the current cell right after hello, and again after the next hello', () => {
    notices.restart();
    expect(sent).toEqual(['a']);
    notices.restart();
    expect(sent).toEqual(['a', 'a']);
  });

  test('a change after a quiet interval goes at once; a burst sends its last cell once', () => {
    notices.restart();
    advance(500);
    current = 'b';
    notices.changed();
    expect(sent).toEqual(['a', 'b']);
    for (const id of ['c', 'd', 'e']) {
      advance(20);
      current = id;
      notices.changed();
    }
    expect(sent).toEqual(['a', 'b']);
    advance(200);
    expect(sent).toEqual(['a', 'b', 'e']);
  });

  test('never the same cell twice in a row; null when no cell is active', () => {
    notices.restart();
    advance(500);
    notices.changed();
    expect(sent).toEqual(['a']);
    current = null;
    notices.changed();
    expect(sent).toEqual(['a', null]);
  });

  test('dispose cancels a pending notice', () => {
    notices.restart();
    current = 'b';
    notices.changed();
    notices.dispose();
    advance(1000);
    expect(sent).toEqual(['a']);
  });
});
