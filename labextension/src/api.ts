/**
 * POST JSON to the agentspace API the way every Jupyter frontend request goes: through
 * ServerConnection.makeRequest (the token or cookie, and the _xsrf header), answering with
 * the status and the parsed JSON body instead of throwing on an error status, since the card
 * shows an error's `message` (and a 409's winner) inline.
 *
 * makeRequest is passed in (not imported) so the card's tests run without JupyterLab.
 */

import type { ServerConnection } from '@jupyterlab/services';

import type { Reply } from './card';
import { Json, joinUrl } from './toolcall';

export type MakeRequest = (
  url: string,
  init: RequestInit,
  settings: ServerConnection.ISettings
) => Promise<Response>;

export type Post = (path: string, body: Json) => Promise<Reply>;

/** A post function for paths relative to the server's base URL. */
export function serverPost(settings: ServerConnection.ISettings, makeRequest: MakeRequest): Post {
  return async (path, body) => {
    const response = await makeRequest(
      joinUrl(settings.baseUrl, path),
      {
        method: 'POST',
        body: JSON.stringify(body),
        headers: { 'Content-Type': 'application/json' }
      },
      settings
    );
    let parsed: any = null;
    try {
      const text = await response.text();
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    return { ok: response.ok, status: response.status, body: parsed };
  };
}
