/**
 * The agent panel's client of the REST API and the session's event stream.
 *
 * Requests go through `ServerConnection.makeRequest`, as JupyterLab's own do: it adds the
 * token header or the `_xsrf` cookie's value, so the panel works under token and cookie
 * auth alike. The event stream is an `EventSource` (it sends the login cookie; with a token
 * in the page config the token goes in the query, as for the notebook link's WebSocket).
 * A failed request throws `ApiError` carrying the server's `{"error", "message"}`; an
 * unreachable server throws `ServerConnection.NetworkError`.
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import {
  AgUiEvent,
  FileListing,
  Json,
  ProcessRecord,
  ServerStatus,
  SessionInfo
} from './types';

const API = 'agentspace/api';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly data: Json = {}
  ) {
    super(message);
  }
}

export interface Decision {
  decision: 'approve' | 'reject';
  reason?: string;
  remember?: boolean;
}

/** What `stream` calls back with. */
export interface StreamHandlers {
  /** The stream is open (the server answered). */
  open(): void;
  event(seq: number, event: AgUiEvent): void;
  /** The stream broke or could not open (the panel reconnects from the last seq). */
  error(): void;
}

export class AgentspaceApi {
  constructor(readonly settings: ServerConnection.ISettings) {}

  /** The notebook's session, created if it has none (idempotent). */
  openSession(notebook: string): Promise<SessionInfo> {
    return this.json('sessions', { method: 'POST', body: JSON.stringify({ notebook }) });
  }

  session(id: string): Promise<SessionInfo> {
    return this.json(sessionPath(id));
  }

  setModel(id: string, model: string): Promise<SessionInfo> {
    return this.json(sessionPath(id), { method: 'PATCH', body: JSON.stringify({ model }) });
  }

  stop(id: string): Promise<Json> {
    return this.json(`${sessionPath(id)}/stop`, { method: 'POST' });
  }

  resume(id: string): Promise<Json> {
    return this.json(`${sessionPath(id)}/resume`, { method: 'POST' });
  }

  decide(id: string, toolCallId: string, decision: Decision): Promise<Json> {
    const path = `${sessionPath(id)}/approvals/${encodeURIComponent(toolCallId)}`;
    return this.json(path, { method: 'POST', body: JSON.stringify(decision) });
  }

  files(id: string, folder: string): Promise<FileListing> {
    return this.json(`${sessionPath(id)}/files?path=${encodeURIComponent(folder)}`);
  }

  processes(id: string): Promise<{ processes: ProcessRecord[] }> {
    return this.json(`${sessionPath(id)}/processes`);
  }

  output(id: string, name: string, tail: number): Promise<{ name: string; output: string }> {
    return this.json(`${processPath(id, name)}/output?tail=${tail}`);
  }

  stopProcess(id: string, name: string): Promise<ProcessRecord> {
    return this.json(`${processPath(id, name)}/stop`, { method: 'POST' });
  }

  /** Start a process again with its command (the server stops it first if it runs). */
  restartProcess(id: string, name: string): Promise<ProcessRecord> {
    return this.json(`${processPath(id, name)}/restart`, { method: 'POST' });
  }

  /** The server's status: the panel reads the models to pick from. */
  status(): Promise<ServerStatus> {
    return this.json('status');
  }

  /** The URL of a workspace file's content (opened in a new tab, or downloaded). */
  fileUrl(id: string, path: string): string {
    return this.withToken(this.url(`${sessionPath(id)}/files/${URLExt.encodeParts(path)}`));
  }

  /** The session's events after `after`, then live ones, until `close()`. */
  stream(id: string, after: number, handlers: StreamHandlers): { close(): void } {
    const url = this.withToken(this.url(`${sessionPath(id)}/events?after=${after}`));
    const source = new EventSource(url);
    let closed = false;
    source.onopen = () => {
      if (!closed) {
        handlers.open();
      }
    };
    source.onmessage = message => {
      let event: AgUiEvent;
      try {
        event = JSON.parse(message.data);
      } catch {
        console.warn('agentspace: an event that is not JSON', message.data);
        return;
      }
      const seq = Number(message.lastEventId);
      if (!closed && Number.isSafeInteger(seq) && event && typeof event.type === 'string') {
        handlers.event(seq, event);
      }
    };
    source.onerror = () => {
      // The browser would retry on its own, but not after an HTTP error; one way for both:
      // close, and let the panel reconnect from the last seq it has.
      if (!closed) {
        closed = true;
        source.close();
        handlers.error();
      }
    };
    return {
      close: () => {
        closed = true;
        source.close();
      }
    };
  }

  private url(path: string): string {
    return URLExt.join(this.settings.baseUrl, API, path);
  }

  private withToken(url: string): string {
    const token = this.settings.token;
    if (!token) {
      return url;
    }
    return url + (url.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token);
  }

  private async json<T>(path: string, init: RequestInit = {}): Promise<T> {
    const response = await ServerConnection.makeRequest(this.url(path), init, this.settings);
    const text = await response.text();
    let body: Json = {};
    try {
      body = text ? JSON.parse(text) : {};
    } catch {
      body = {};
    }
    if (!response.ok) {
      const message =
        typeof body.message === 'string' && body.message
          ? body.message
          : `${response.status} ${response.statusText || 'error'}`;
      throw new ApiError(response.status, String(body.error ?? 'error'), message, body);
    }
    return body as T;
  }
}

function sessionPath(id: string): string {
  return `sessions/${encodeURIComponent(id)}`;
}

function processPath(id: string, name: string): string {
  return `${sessionPath(id)}/processes/${encodeURIComponent(name)}`;
}

/** A one-line reason for a failed request, for the panel to show. */
export function reasonOf(error: unknown): string {
  if (error instanceof ApiError) {
    return error.message;
  }
  if (error instanceof ServerConnection.NetworkError) {
    return error.message || 'the network request failed';
  }
  return error instanceof Error ? error.message : String(error);
}
