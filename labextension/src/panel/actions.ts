/**
 * What the agent panel's view can ask for: the controller implements it, the view only calls
 * it. One interface, so the view never talks to the server or changes the state itself.
 */

export interface DecideOptions {
  reason?: string;
  remember?: boolean;
}

export interface PanelActions {
  setModel(model: string): void;
  stop(): void;
  resume(): void;
  decide(toolCallId: string, decision: 'approve' | 'reject', options?: DecideOptions): void;
  dismissError(): void;
  toggleFolder(path: string): void;
  refreshFiles(): void;
  /** The URL of a workspace file's content (with the token when the page has one). */
  fileUrl(path: string): string;
  toggleProcess(name: string): void;
  stopProcess(name: string): void;
  /** Start a process again with its command (stopped first if it runs). */
  restartProcess(name: string): void;
  refreshProcesses(): void;
}
