/** serverPost: the request it makes through makeRequest, and the reply it gives the card. */

import type { ServerConnection } from '@jupyterlab/services';

import { MakeRequest, serverPost } from './api';

const settings = { baseUrl: 'http://localhost:8888/base/' } as ServerConnection.ISettings;

function responding(status: number, text: string) {
  const requests: { url: string; init: RequestInit; settings: ServerConnection.ISettings }[] = [];
  const makeRequest: MakeRequest = async (url, init, s) => {
    requests.push({ url, init, settings: s });
    return { ok: status < 400, status, text: async () => text } as unknown as Response;
  };
  return { requests, makeRequest };
}

test('posts JSON to the path under the base URL, with the settings (auth, xsrf)', async () => {
  const { requests, makeRequest } = responding(200, '{"ok": true}');
  const reply = await serverPost(settings, makeRequest)('agentspace/api/sessions/s1/stop', { a: 1 });
  expect(requests).toHaveLength(1);
  expect(requests[0].url).toBe('http://localhost:8888/base/agentspace/api/sessions/s1/stop');
  expect(requests[0].init.method).toBe('POST');
  expect(JSON.parse(requests[0].init.body as string)).toEqual({ a: 1 });
  expect(requests[0].settings).toBe(settings);
  expect(reply).toEqual({ ok: true, status: 200, body: { ok: true } });
});

test('an error status is a reply with its JSON body, not an exception', async () => {
  const { makeRequest } = responding(409, '{"decided_by": "bob", "decision": "approve"}');
  const reply = await serverPost(settings, makeRequest)('x', {});
  expect(reply).toEqual({ ok: false, status: 409, body: { decided_by: 'bob', decision: 'approve' } });
});

test('a body that is not JSON is null', async () => {
  const { makeRequest } = responding(502, '<html>bad gateway</html>');
  expect((await serverPost(settings, makeRequest)('x', {})).body).toBeNull();
});
