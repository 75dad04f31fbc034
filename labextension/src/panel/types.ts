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

/** `limits` of a session (store/records.py SessionLimits); null: no such bound. */
export interface SessionLimits {
  token_budget: number | null;
  cost_ceiling: number | null;
  max_model_calls: number;
  /** What the history is trimmed to; null: the server cannot tell yet. */
  context_window: number | null;
}

/** One of `previews[]` (store/records.py PreviewInfo). */
export interface PreviewInfo {
  port: number;
  url: string;
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
  limits?: SessionLimits | null;
  /** The previews opened while the server has the workspace; null: only the events tell. */
  previews?: PreviewInfo[] | null;
}

/** `models` of `GET status` (engine/config.py ModelChoices): suggestions, not a catalogue. */
export interface ModelChoices {
  default: string;
  models: string[];
  about: string;
}

/** `GET status`: only what the panel reads (the store's health is not its business). */
export interface ServerStatus {
  models?: ModelChoices;
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
