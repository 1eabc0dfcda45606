/**
 * `error` and `warning` (docs/protocol.md §3.6): a peer tells us something went wrong, about one channel
 * or (no channelId) about all of them. An error means the channel(s) fail; a warning does not.
 * The text is for humans and logs only: never act on it, and print it escaped.
 */
import { bytes32, defineMessage, text, u16 } from './schema.js';

export const MAX_ERROR_TEXT_BYTES = 256;

interface Report {
  /** Absent: the report concerns every channel with this peer. */
  channelId?: Uint8Array;
  code: number;
  message: string;
}

export interface ErrorMsg extends Report {
  type: 'error';
}

export interface WarningMsg extends Report {
  type: 'warning';
}

export type ErrorFamilyMsg = ErrorMsg | WarningMsg;

const reportFields = {
  channelId: { key: 2, type: bytes32, optional: true },
  code: { key: 4, type: u16 },
  message: { key: 6, type: text(MAX_ERROR_TEXT_BYTES) },
} as const;

export const errorMessages = [
  defineMessage<ErrorMsg>('error', reportFields),
  defineMessage<WarningMsg>('warning', reportFields),
] as const;
