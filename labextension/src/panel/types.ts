/**
 * The wire shapes the agent panel reads: the REST API's JSON (snake_case, as
 * `extension/agentspace/server/openapi.py` documents it) and the AG-UI events of the
 * session's SSE stream (camelCase). Only the fields the panel uses are typed; the rest
 * pass through untouched.
 */

export type Json = { [key: string]: any };

/** `usage` of a session (store/records.py UsageTotals); `cost` null: no known price. */
export interface UsageTotals {
  input_tokens: number;
  output_tokens: number;
  total_tokens?: number;
  cost: number | null;
  model_calls: number;
  unpriced_calls: number;
}

/** One of `pending_calls[]` (store/approvals.py PendingInfo). */
export interface PendingInfo {
  tool_call_id: string;
  tool: string;
  arguments: unknown;
  reason: string;
  message: string;
  executor: string;
  needs_approval: boolean;
  preview: string | null;
}

/** `GET sessions/{id}` and `POST sessions` (store/records.py SessionInfo). */
export interface SessionInfo {
  id: string;
  notebook: string;
  model: string | null;
  effective_model: string;
  status: string;
  reason: string | null;
  usage: UsageTotals;
  queued: number;
  pending_calls: PendingInfo[];
  last_seq: number;
  always_allowed?: string[];
  sandbox_backend?: string;
}

/** One entry of `GET sessions/{id}/files?path=` (its `path` is relative to that folder). */
export interface FileEntry {
  path: string;
  kind: 'file' | 'dir' | 'symlink' | 'other';
  size: number | null;
  target: string | null;
}

export interface FileListing {
  path: string;
  entries: FileEntry[];
  truncated: boolean;
}

/** `GET sessions/{id}/processes` items and `agentspace.process` values (ProcessRecord). */
export interface ProcessRecord {
  name: string;
  command: string;
  status: string;
  exit_code: number | null;
  started: number;
  ended: number | null;
  log: string;
}

/** An AG-UI event as the stream sends it (`type` plus its own fields). */
export interface AgUiEvent extends Json {
  type: string;
}
