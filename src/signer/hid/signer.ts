/**
 * HidSigner: the Signer port on the Trickle key (firmware-bridge/PROTOCOL.md §3). Channel keys live on the
 * key, which checks every request against the channel's terms and what it signed before; the on-chain
 * wallet and the node identity stay with a host signer (the key has no commands for them: it would have to
 * sign them blind).
 *
 * One exchange at a time. A key that goes away (unplugged, emulator killed, no answer) is waited out: the
 * pending request is reported (`onStatus`), the key is looked for again every `reconnectIntervalMs`,
 * its serial must match the one first seen, and the same request is sent again. That is safe because every
 * command is idempotent on the key for the same request (a byte-identical retry is signed again, a revoked
 * commitment's secret is returned again). A channel waiting on its signer pauses; nothing is lost.
 */
import { decodeBody, encodeBody, KEY_STATUS_NAMES, KeyCommand, KeyStatus, failureType, COMMAND_TYPES, type ChannelStateResponse, type InfoResponse, type KeyPolicy } from './commands.js';
import { HidClient } from './client.js';
import { HidError } from './errors.js';
import type { HidConnector } from './transport.js';
import type { ChannelSetup, HolderCommitmentCheck, KeyFamily, KeyLocator, SignInputRequest, Signer } from '../port.js';
import { txidToHash } from '../../onchain/tx.js';
import { SIGHASH_ALL } from '../../onchain/script.js';
import { WireError } from '../../wire/wire-error.js';
import type { FieldType } from '../../wire/schema.js';

/** The key answered with a status other than OK: a policy refusal (`reason` names the rule) or another failure. */
export class KeyRefusedError extends Error {
  override readonly name = 'KeyRefusedError';
  constructor(
    /** 'refused', 'denied', 'cancelled', 'locked', 'storage', 'bad-request', 'internal'. */
    readonly status: string,
    /** The rule (e.g. `policy-oneway-amount-not-increasing`) or a short code. */
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export type HidSignerStatus =
  | { kind: 'connected'; serial: string; path: string }
  | { kind: 'disconnected'; error: string }
  | { kind: 'waiting-for-user' };

export interface HidSignerOptions {
  connector: HidConnector;
  /** Signs for the families that stay on the host. */
  hostSigner: Signer;
  /** Default ['wallet', 'identity']. */
  hostFamilies?: readonly KeyFamily[];
  /** Only this key (its serial); default: the first key seen, from then on. */
  serial?: string;
  /** Silence from the key before a request is given up and retried on a fresh connection (default 3000). */
  timeoutMs?: number;
  /** While the key waits for the user (default 120000). */
  confirmTimeoutMs?: number;
  /** How long to wait for a key that went away; default Infinity (the channel waits). */
  reconnectTimeoutMs?: number;
  reconnectIntervalMs?: number;
  onStatus?: (status: HidSignerStatus) => void;
}

const DEFAULT_HOST_FAMILIES: readonly KeyFamily[] = ['wallet', 'identity'];

export class HidSigner implements Signer {
  readonly #o: HidSignerOptions;
  readonly #hostFamilies: ReadonlySet<KeyFamily>;
  #client: HidClient | undefined;
  #serial: string | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;
  readonly #publicKeys = new Map<string, Uint8Array>();
  #wake: (() => void) | undefined;

  private constructor(options: HidSignerOptions) {
    this.#o = options;
    this.#hostFamilies = new Set(options.hostFamilies ?? DEFAULT_HOST_FAMILIES);
    this.#serial = options.serial;
  }

  /** Connect now (rejects with HidError NOT_FOUND if no key is there) and learn the key's serial. */
  static async connect(options: HidSignerOptions): Promise<HidSigner> {
    const signer = new HidSigner(options);
    await signer.#connect();
    return signer;
  }

  /** The serial of the key this signer is bound to. */
  get serial(): string | undefined {
    return this.#serial;
  }

  get connected(): boolean {
    return this.#client !== undefined && !this.#client.closed;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#wake?.();
    const client = this.#client;
    this.#client = undefined;
    await client?.close();
  }

  // ---- key management ----

  info(): Promise<InfoResponse> {
    return this.#call(KeyCommand.GET_INFO, {});
  }

  channelState(keyIndex: number): Promise<ChannelStateResponse> {
    return this.#call(KeyCommand.GET_CHANNEL_STATE, { keyIndex });
  }

  /** Needs the user's confirmation on the key. Returns the new policy's hash. */
  async setPolicy(policy: KeyPolicy): Promise<Uint8Array> {
    return (await this.#call(KeyCommand.SET_POLICY, policy)).policyHash;
  }

  // ---- Signer ----

  async getPublicKey(key: KeyLocator): Promise<Uint8Array> {
    if (this.#hostFamilies.has(key.family)) return this.#o.hostSigner.getPublicKey(key);
    const id = `${key.family}/${key.index}`;
    let publicKey = this.#publicKeys.get(id);
    if (!publicKey) {
      publicKey = (await this.#call(KeyCommand.GET_PUBLIC_KEY, { family: key.family, index: key.index })).publicKey;
      this.#publicKeys.set(id, publicKey);
    }
    return publicKey;
  }

  async perCommitmentPoint(seed: KeyLocator, commitmentNumber: bigint): Promise<Uint8Array> {
    if (seed.family !== 'commitment') throw new RangeError('per-commitment points come from a key of family "commitment"');
    return (await this.#call(KeyCommand.GET_PUBLIC_KEY, { family: 'commitment', index: seed.index, commitmentNumber })).publicKey;
  }

  revokeCommitment(seed: KeyLocator, commitmentNumber: bigint): Promise<{ secret: Uint8Array; nextPoint: Uint8Array }> {
    if (seed.family !== 'commitment') throw new RangeError('per-commitment secrets come from a key of family "commitment"');
    return this.#call(KeyCommand.REVOKE, { keyIndex: seed.index, number: commitmentNumber });
  }

  async signInput(request: SignInputRequest): Promise<Uint8Array> {
    if (this.#hostFamilies.has(request.key.family)) return this.#o.hostSigner.signInput(request);
    if ((request.sighashType ?? SIGHASH_ALL) !== SIGHASH_ALL) throw new RangeError('the key signs SIGHASH_ALL only');
    const { context, key, tx } = request;
    if (!context) throw new TypeError(`the key signs a ${key.family} key only with a context saying what the signature is for`);
    const keyIndex = key.index;
    const expectFamily = (family: KeyFamily) => {
      if (key.family !== family) throw new TypeError(`a ${context.kind} signature uses the ${family} key, not ${key.family}`);
      if (request.inputIndex !== 0 && family === 'funding') throw new RangeError('the funding input is input 0');
    };
    switch (context.kind) {
      case 'oneway-payment':
        expectFamily('funding');
        return (await this.#call(KeyCommand.SIGN_ONEWAY_PAYMENT, { keyIndex, stateNumber: context.stateNumber, amountMsat: context.amountMsat, tipHeight: context.tipHeight, tx })).signature;
      case 'oneway-refund':
      case 'holder-commitment':
      case 'cooperative-close': {
        expectFamily('funding');
        const kind = context.kind === 'cooperative-close' ? 'cooperative' : context.kind;
        return (await this.#call(KeyCommand.SIGN_CLOSE, { keyIndex, kind, tx })).signature;
      }
      case 'counterparty-commitment':
        expectFamily('funding');
        return (
          await this.#call(KeyCommand.SIGN_COUNTERPARTY_COMMITMENT, {
            keyIndex,
            number: context.number,
            toLocalMsat: context.toLocalMsat,
            toRemoteMsat: context.toRemoteMsat,
            feeratePerKw: context.feeratePerKw,
            tx,
            perCommitmentPoint: context.perCommitmentPoint,
          })
        ).signature;
      case 'sweep':
        expectFamily(context.sweep === 'penalty' ? 'revocation' : context.sweep === 'to-local' ? 'delayed' : 'payment');
        return (
          await this.#call(KeyCommand.SIGN_SWEEP, {
            keyIndex,
            kind: context.sweep,
            number: context.number,
            tx,
            inputIndex: request.inputIndex,
            scriptCode: request.scriptCode,
            valueSat: request.valueSat,
          })
        ).signature;
    }
  }

  async setupChannel(setup: ChannelSetup): Promise<void> {
    await this.#call(KeyCommand.SETUP_CHANNEL, {
      keyIndex: setup.keyIndex,
      fundingTxid: txidToHash(setup.fundingOutpoint.txid),
      fundingVout: setup.fundingOutpoint.vout,
      capacitySat: setup.capacitySat,
      ...(setup.oneway ? { oneway: setup.oneway } : {}),
      ...(setup.rsmc ? { rsmc: setup.rsmc } : {}),
    });
  }

  async onewaySignedState(keyIndex: number): Promise<{ stateNumber: bigint; amountMsat: bigint } | undefined> {
    let state: ChannelStateResponse;
    try {
      state = await this.channelState(keyIndex);
    } catch (error) {
      if (error instanceof KeyRefusedError && error.reason === 'policy-channel-unknown') return undefined;
      throw error;
    }
    if (state.kind !== 'oneway') return undefined;
    return { stateNumber: state.stateNumber ?? 0n, amountMsat: state.amountMsat ?? 0n };
  }

  async validateHolderCommitment(check: HolderCommitmentCheck): Promise<void> {
    await this.#call(KeyCommand.VALIDATE_HOLDER_COMMITMENT, check);
  }

  async validateCounterpartyRevocation(revocation: { keyIndex: number; number: bigint; secret: Uint8Array }): Promise<void> {
    await this.#call(KeyCommand.VALIDATE_COUNTERPARTY_REVOCATION, revocation);
  }

  // ---- the exchange ----

  /** One command, in turn with the others; retried on a fresh connection while the key is away. */
  #call<C extends keyof typeof COMMAND_TYPES>(
    command: C,
    body: (typeof COMMAND_TYPES)[C]['request'] extends FieldType<infer T> ? T : never,
  ): Promise<(typeof COMMAND_TYPES)[C]['response'] extends FieldType<infer R> ? R : never> {
    const types = COMMAND_TYPES[command] as { request: FieldType<unknown>; response: FieldType<unknown> };
    // Encoding errors are the caller's (TypeError/RangeError), before anything is sent.
    const payload = encodeBody(types.request, body);
    const run = this.#queue.then(() => this.#exchangeWithRetry(command, payload, types.response));
    this.#queue = run.catch(() => undefined);
    return run as Promise<never>;
  }

  async #exchangeWithRetry(command: number, payload: Uint8Array, responseType: FieldType<unknown>): Promise<unknown> {
    let awaySince: number | undefined;
    for (;;) {
      if (this.#closed) throw new HidError('CLOSED', 'the signer is closed');
      let response: Uint8Array;
      try {
        const client = this.#client && !this.#client.closed ? this.#client : await this.#connect();
        response = await client.exchange(command, payload, {
          onKeepalive: (status) => {
            if (status === 2) this.#o.onStatus?.({ kind: 'waiting-for-user' });
          },
        });
      } catch (error) {
        if (!isKeyAway(error)) throw error;
        // The key went away (or never answered): report it, wait for it, then send the same request again.
        awaySince ??= Date.now();
        if (this.#client) {
          this.#o.onStatus?.({ kind: 'disconnected', error: (error as Error).message });
          const client = this.#client;
          this.#client = undefined;
          await client.close().catch(() => undefined);
        }
        const limit = this.#o.reconnectTimeoutMs ?? Infinity;
        if (Date.now() - awaySince >= limit) throw new HidError('DISCONNECTED', `the key has been away for ${limit} ms`, undefined, { cause: error });
        await this.#sleep(this.#o.reconnectIntervalMs ?? 500);
        continue;
      }
      return parseResponse(response, responseType);
    }
  }

  async #connect(): Promise<HidClient> {
    const connection = await this.#o.connector.connect();
    const client = new HidClient(connection.transport, {
      ...(this.#o.timeoutMs !== undefined ? { timeoutMs: this.#o.timeoutMs } : {}),
      ...(this.#o.confirmTimeoutMs !== undefined ? { confirmTimeoutMs: this.#o.confirmTimeoutMs } : {}),
    });
    try {
      await client.init();
      const info = parseResponse(await client.exchange(KeyCommand.GET_INFO, encodeBody(COMMAND_TYPES[KeyCommand.GET_INFO].request, {})), COMMAND_TYPES[KeyCommand.GET_INFO].response);
      // After a reconnect it must be the same key: another key has other channel keys and other state.
      if (this.#serial !== undefined && info.serial !== this.#serial) {
        throw new HidError('NOT_FOUND', `a key with serial ${info.serial} is attached, not ${this.#serial}`);
      }
      this.#serial = info.serial;
      this.#client = client;
      // Reported when it happens, not at the next request: a channel can say its key is away while idle.
      connection.transport.onClose((error) => {
        if (this.#client !== client || this.#closed) return;
        this.#client = undefined;
        this.#o.onStatus?.({ kind: 'disconnected', error: error?.message ?? 'the key went away' });
      });
      this.#o.onStatus?.({ kind: 'connected', serial: info.serial, path: connection.path });
      return client;
    } catch (error) {
      await client.close().catch(() => undefined);
      throw error;
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }
}

function isKeyAway(error: unknown): boolean {
  return error instanceof HidError && (error.code === 'DISCONNECTED' || error.code === 'NOT_FOUND' || error.code === 'TIMEOUT' || error.code === 'CLOSED');
}

/** status ‖ body: the decoded body on OK, KeyRefusedError otherwise; HidError BAD_RESPONSE on garbage. */
function parseResponse<T>(response: Uint8Array, type: FieldType<T>): T {
  if (response.length < 1) throw new HidError('BAD_RESPONSE', 'an empty response');
  const status = response[0]!;
  const body = response.subarray(1);
  try {
    if (status === KeyStatus.OK) return decodeBody(type, body);
    const failure = decodeBody(failureType, body);
    const name = KEY_STATUS_NAMES[status] ?? `status-${status}`;
    throw new KeyRefusedError(name, failure.reason, `the key ${status === KeyStatus.REFUSED ? 'refused' : 'failed'}: ${failure.reason}${failure.message ? ` (${failure.message})` : ''}`);
  } catch (error) {
    if (error instanceof WireError) throw new HidError('BAD_RESPONSE', `the key's response does not decode: ${error.message}`);
    throw error;
  }
}
