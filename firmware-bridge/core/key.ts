/**
 * The Trickle key's logic (firmware-bridge/PROTOCOL.md §3–§5), portable TypeScript with no I/O of its
 * own: storage, the user's confirmation, the clock and randomness are ports. The USB-gadget runner and the
 * emulator put it behind the link layer (./link.ts) as its CommandHandler.
 *
 * Every command decodes strictly (src/signer/hid/commands.ts), runs its policy rule (./policy.ts), stores
 * the next state, and only then answers: no signature or secret leaves before the state that produced it
 * is durable ([K-1]). A refused, malformed or cancelled command changes nothing ([K-2]). The handler
 * never throws: every failure is a status byte and a reason.
 */
import { WireError } from '../../src/wire/wire-error.js';
import { SoftwareSigner } from '../../src/signer/software.js';
import type { KeyFamily, KeyLocator } from '../../src/signer/port.js';
import { fundingScript } from '../../src/onchain/funding.js';
import { sha256 } from '../../src/crypto/hash.js';
import { equalBytes, bytesToHex } from '../../src/bytes.js';
import { hashToTxid } from '../../src/onchain/tx.js';
import { MAX_COMMITMENT_NUMBER } from '../../src/onchain/rsmc/shachain.js';
import {
  COMMAND_TYPES,
  decodeBody,
  encodeBody,
  encodeResponse,
  failureResponse,
  KeyCommand,
  KeyStatus,
  policyType,
  type ChannelStateResponse,
  type KeyPolicy,
  type SetupChannelRequest,
} from '../../src/signer/hid/commands.js';
import { encodeStruct } from '../../src/wire/codec.js';
import type { CommandContext, CommandHandler } from './link.js';
import {
  chargeSpending,
  checkCooperativeClose,
  checkCounterpartyCommitment,
  checkCounterpartyRevocation,
  checkHolderBroadcast,
  checkHolderCommitment,
  checkOnewayPayment,
  checkOnewayRefund,
  checkOnewaySetup,
  checkRevoke,
  checkSweep,
  onewayTerms,
  PolicyRefusal,
  type OwnBasepoints,
} from './policy.js';
import { decodeKeyState, encodeKeyState, MAX_KEY_CHANNELS, STATE_VERSION, type ChannelState, type KeyState, type KeyStorage } from './state.js';

export const FIRMWARE_VERSION = { major: 0, minor: 1, build: 0 };
export const KEY_PROTOCOL_VERSION = 1;

export interface ConfirmRequest {
  kind: 'setup-channel' | 'set-policy';
  /** What the user approves, in words (amounts, scripts in hex, delays). */
  summary: string;
}

/** The user's confirmation: a button on the Pi, a prompt or a flag in the emulator. */
export interface ConfirmPort {
  confirm(request: ConfirmRequest, signal: AbortSignal): Promise<boolean>;
}

export interface KeyCoreOptions {
  storage: KeyStorage;
  confirm: ConfirmPort;
  /** Milliseconds since the epoch (the spending window's clock). */
  now?: () => number;
  random?: (length: number) => Uint8Array;
  /** Errors and refusals, without secrets. */
  log?: (line: string) => void;
}

export const DEFAULT_KEY_POLICY: KeyPolicy = {
  maxPaymentMsat: 1_000_000_000n, // 0.01 BTC in one signature
  maxPeriodMsat: 10_000_000_000n, // 0.1 BTC a day
  periodSeconds: 86_400,
  expirySafetyBlocks: 6,
};

/** A failure that is not a policy refusal: a status and a short reason. */
class CommandFailure extends Error {
  constructor(
    readonly status: Exclude<(typeof KeyStatus)[keyof typeof KeyStatus], 0>,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export class KeyCore {
  #state: KeyState | undefined;
  readonly #o: Required<Omit<KeyCoreOptions, 'log'>> & Pick<KeyCoreOptions, 'log'>;
  #signer: SoftwareSigner | undefined;
  readonly #basepoints = new Map<number, OwnBasepoints>();
  #queue: Promise<unknown> = Promise.resolve();
  readonly #lockReason: string | undefined;

  private constructor(options: KeyCoreOptions, state: KeyState | undefined, lockReason: string | undefined) {
    this.#o = {
      storage: options.storage,
      confirm: options.confirm,
      now: options.now ?? (() => Date.now()),
      random: options.random ?? ((n) => crypto.getRandomValues(new Uint8Array(n))),
      log: options.log,
    };
    this.#state = state;
    this.#lockReason = lockReason;
    if (state) this.#signer = SoftwareSigner.fromSeed(state.seed);
  }

  /**
   * Load the key's state, or create it (a fresh random seed and serial, stored before first use). A
   * state that fails its checksum or does not decode leaves the key locked ([K-4]): it answers GET_INFO and
   * refuses everything else, rather than start over with a policy that forgot what it signed.
   */
  static async open(options: KeyCoreOptions): Promise<KeyCore> {
    let bytes: Uint8Array | undefined;
    try {
      bytes = await options.storage.load();
    } catch (error) {
      // Unreadable is not absent: starting over would forget what was signed and revoked.
      options.log?.(`key state unreadable, key locked: ${(error as Error).message}`);
      return new KeyCore(options, undefined, (error as Error).message);
    }
    if (bytes === undefined) {
      const random = options.random ?? ((n: number) => crypto.getRandomValues(new Uint8Array(n)));
      const state: KeyState = {
        version: STATE_VERSION,
        seed: random(32),
        serial: bytesToHex(random(8)).toUpperCase(),
        policy: DEFAULT_KEY_POLICY,
        tipHeight: 0,
        periodStart: 0,
        periodSpentMsat: 0n,
        channels: [],
      };
      await options.storage.commit(encodeKeyState(state));
      return new KeyCore(options, state, undefined);
    }
    try {
      return new KeyCore(options, decodeKeyState(bytes), undefined);
    } catch (error) {
      options.log?.(`key state unreadable, key locked: ${(error as Error).message}`);
      return new KeyCore(options, undefined, (error as Error).message);
    }
  }

  get locked(): boolean {
    return this.#state === undefined;
  }

  get serial(): string {
    return this.#state?.serial ?? 'LOCKED';
  }

  /** The link's handler: one command at a time ([K-5]), never throws. */
  readonly handle: CommandHandler = (command, payload, context) => {
    const run = this.#queue.then(() => this.#dispatch(command, payload, context));
    this.#queue = run.catch(() => undefined);
    return run;
  };

  async #dispatch(command: number, payload: Uint8Array, context: CommandContext): Promise<Uint8Array> {
    const name = commandName(command);
    try {
      if (command !== KeyCommand.GET_INFO && !this.#state) throw new CommandFailure(KeyStatus.LOCKED, 'locked', `the key's state is unreadable (${this.#lockReason})`);
      return await this.#run(command, payload, context);
    } catch (error) {
      if (error instanceof PolicyRefusal) {
        this.#o.log?.(`${name} refused: ${error.reason}: ${error.message}`);
        return failureResponse(KeyStatus.REFUSED, { reason: error.reason, message: error.message.slice(0, 200) });
      }
      if (error instanceof WireError) {
        this.#o.log?.(`${name}: bad request: ${error.code}`);
        return failureResponse(KeyStatus.BAD_REQUEST, { reason: error.code.toLowerCase(), message: error.message.slice(0, 200) });
      }
      if (error instanceof CommandFailure) {
        this.#o.log?.(`${name}: ${error.reason}: ${error.message}`);
        return failureResponse(error.status, { reason: error.reason, message: error.message.slice(0, 200) });
      }
      this.#o.log?.(`${name}: internal error: ${(error as Error).message}`);
      return failureResponse(KeyStatus.INTERNAL, { reason: 'internal', message: 'internal error' });
    }
  }

  async #run(command: number, payload: Uint8Array, context: CommandContext): Promise<Uint8Array> {
    switch (command) {
      case KeyCommand.GET_INFO: {
        decodeBody(COMMAND_TYPES[command].request, payload);
        const state = this.#state;
        const policy = state?.policy ?? DEFAULT_KEY_POLICY;
        return ok(COMMAND_TYPES[command].response, {
          protocolVersion: KEY_PROTOCOL_VERSION,
          firmware: `${FIRMWARE_VERSION.major}.${FIRMWARE_VERSION.minor}.${FIRMWARE_VERSION.build}`,
          serial: this.serial,
          policyHash: policyHash(policy),
          policy,
          locked: this.locked,
          channels: state?.channels.length ?? 0,
        });
      }
      case KeyCommand.GET_PUBLIC_KEY: {
        const request = decodeBody(COMMAND_TYPES[command].request, payload);
        const locator = { family: request.family, index: request.index };
        if (request.commitmentNumber !== undefined) {
          checkCommitmentNumber(request.commitmentNumber);
          if (request.family !== 'commitment') throw new CommandFailure(KeyStatus.BAD_REQUEST, 'out_of_range', 'a commitment number goes with family commitment');
          return ok(COMMAND_TYPES[command].response, { publicKey: await this.#keys.perCommitmentPoint(locator, request.commitmentNumber) });
        }
        // The shachain seed is a secret, not a key: its "public key" is not handed out.
        if (request.family === 'commitment') throw new CommandFailure(KeyStatus.BAD_REQUEST, 'out_of_range', 'family commitment needs a commitment number');
        return ok(COMMAND_TYPES[command].response, { publicKey: await this.#keys.getPublicKey(locator) });
      }
      case KeyCommand.SETUP_CHANNEL:
        return this.#setupChannel(decodeBody(COMMAND_TYPES[command].request, payload), context);
      case KeyCommand.SET_POLICY: {
        const policy = decodeBody(COMMAND_TYPES[command].request, payload);
        if (policy.periodSeconds < 1) throw new CommandFailure(KeyStatus.BAD_REQUEST, 'out_of_range', 'periodSeconds must be at least 1');
        await this.#confirm({ kind: 'set-policy', summary: describePolicy(policy) }, context);
        await this.#commit({ ...this.#state!, policy }, context);
        return ok(COMMAND_TYPES[command].response, { policyHash: policyHash(policy) });
      }
      case KeyCommand.SIGN_ONEWAY_PAYMENT: {
        const request = decodeBody(COMMAND_TYPES[command].request, payload);
        const ch = this.#channel(request.keyIndex);
        const state = this.#state!;
        const terms = onewayTerms(ch, (await this.#ownBasepoints(ch.keyIndex)).fundingPubkey);
        const tipHeight = Math.max(state.tipHeight, request.tipHeight);
        const decision = checkOnewayPayment(ch, terms, request, tipHeight, state.policy);
        const window = chargeSpending(state.policy, state, decision.spentMsat, this.#nowSeconds());
        const signature = await this.#signFunding(ch, request.tx);
        await this.#commit({ ...state, ...window, tipHeight, channels: replaceChannel(state, { ...ch, onewayState: decision.next }) }, context);
        return ok(COMMAND_TYPES[command].response, { signature });
      }
      case KeyCommand.SIGN_COUNTERPARTY_COMMITMENT: {
        const request = decodeBody(COMMAND_TYPES[command].request, payload);
        const ch = this.#channel(request.keyIndex);
        const state = this.#state!;
        const decision = checkCounterpartyCommitment(ch, await this.#ownBasepoints(ch.keyIndex), request);
        const window = chargeSpending(state.policy, state, decision.spentMsat, this.#nowSeconds());
        const signature = await this.#signFunding(ch, request.tx);
        await this.#commit({ ...state, ...window, channels: replaceChannel(state, { ...ch, rsmcState: decision.next }) }, context);
        return ok(COMMAND_TYPES[command].response, { signature });
      }
      case KeyCommand.VALIDATE_HOLDER_COMMITMENT: {
        const request = decodeBody(COMMAND_TYPES[command].request, payload);
        const ch = this.#channel(request.keyIndex);
        checkCommitmentNumber(request.number);
        const point = await this.#keys.perCommitmentPoint(locator('commitment', ch.keyIndex), request.number);
        const next = checkHolderCommitment(ch, await this.#ownBasepoints(ch.keyIndex), point, request);
        await this.#commit({ ...this.#state!, channels: replaceChannel(this.#state!, { ...ch, rsmcState: next }) }, context);
        return ok(COMMAND_TYPES[command].response, {});
      }
      case KeyCommand.REVOKE: {
        const request = decodeBody(COMMAND_TYPES[command].request, payload);
        const ch = this.#channel(request.keyIndex);
        const next = checkRevoke(ch, request.number);
        const revoked = await this.#keys.revokeCommitment(locator('commitment', ch.keyIndex), request.number);
        // [K-1] the revocation is on record before the secret leaves.
        await this.#commit({ ...this.#state!, channels: replaceChannel(this.#state!, { ...ch, rsmcState: next }) }, context);
        return ok(COMMAND_TYPES[command].response, revoked);
      }
      case KeyCommand.VALIDATE_COUNTERPARTY_REVOCATION: {
        const request = decodeBody(COMMAND_TYPES[command].request, payload);
        const ch = this.#channel(request.keyIndex);
        const next = checkCounterpartyRevocation(ch, request.number, request.secret);
        await this.#commit({ ...this.#state!, channels: replaceChannel(this.#state!, { ...ch, rsmcState: next }) }, context);
        return ok(COMMAND_TYPES[command].response, {});
      }
      case KeyCommand.SIGN_CLOSE: {
        const request = decodeBody(COMMAND_TYPES[command].request, payload);
        const ch = this.#channel(request.keyIndex);
        if (request.kind === 'oneway-refund') checkOnewayRefund(onewayTerms(ch, (await this.#ownBasepoints(ch.keyIndex)).fundingPubkey), request.tx);
        else if (request.kind === 'cooperative') checkCooperativeClose(ch, request.tx);
        else checkHolderBroadcast(ch, await this.#ownBasepoints(ch.keyIndex), request.tx);
        return ok(COMMAND_TYPES[command].response, { signature: await this.#signFunding(ch, request.tx) });
      }
      case KeyCommand.SIGN_SWEEP: {
        const request = decodeBody(COMMAND_TYPES[command].request, payload);
        const ch = this.#channel(request.keyIndex);
        const ours = await this.#ownBasepoints(ch.keyIndex);
        const points = new Map<bigint, Uint8Array>();
        checkCommitmentNumber(request.number);
        if (request.kind === 'to-local') points.set(request.number, await this.#keys.perCommitmentPoint(locator('commitment', ch.keyIndex), request.number));
        const key = checkSweep(ch, ours, request, (n) => points.get(n)!);
        const tweak =
          key.family === 'revocation' ? { kind: 'revocation' as const, perCommitmentSecret: key.secret }
          : key.family === 'delayed' ? { kind: 'perCommitment' as const, perCommitmentPoint: key.point }
          : undefined;
        const signature = await this.#keys.signInput({
          key: locator(key.family, ch.keyIndex),
          ...(tweak ? { tweak } : {}),
          tx: request.tx,
          inputIndex: request.inputIndex,
          scriptCode: request.scriptCode,
          valueSat: request.valueSat,
        });
        return ok(COMMAND_TYPES[command].response, { signature });
      }
      case KeyCommand.GET_CHANNEL_STATE: {
        const request = decodeBody(COMMAND_TYPES[command].request, payload);
        return ok(COMMAND_TYPES[command].response, channelStateOf(this.#channel(request.keyIndex)));
      }
      default:
        throw new CommandFailure(KeyStatus.BAD_REQUEST, 'unknown_command', `command 0x${command.toString(16)} is not defined`);
    }
  }

  get #keys(): SoftwareSigner {
    return this.#signer!;
  }

  #nowSeconds(): number {
    return Math.floor(this.#o.now() / 1000);
  }

  #channel(keyIndex: number): ChannelState {
    const ch = this.#state!.channels.find((c) => c.keyIndex === keyIndex);
    if (!ch) throw new PolicyRefusal('policy-channel-unknown', `channel ${keyIndex} has not been set up on this key`);
    return ch;
  }

  async #ownBasepoints(keyIndex: number): Promise<OwnBasepoints> {
    let points = this.#basepoints.get(keyIndex);
    if (!points) {
      const get = (family: KeyFamily) => this.#keys.getPublicKey(locator(family, keyIndex));
      points = {
        fundingPubkey: await get('funding'),
        revocationBasepoint: await get('revocation'),
        paymentBasepoint: await get('payment'),
        delayedPaymentBasepoint: await get('delayed'),
        htlcBasepoint: await get('htlc'),
      };
      this.#basepoints.set(keyIndex, points);
    }
    return points;
  }

  /** Our signature on the funding input (input 0) of a transaction the policy has checked. */
  async #signFunding(ch: ChannelState, tx: Uint8Array): Promise<Uint8Array> {
    const ours = await this.#ownBasepoints(ch.keyIndex);
    const remote = ch.oneway?.payeeFundingPubkey ?? ch.rsmc!.remote.fundingPubkey;
    const script = fundingScript(ours.fundingPubkey, remote);
    return this.#keys.signInput({ key: locator('funding', ch.keyIndex), tx, inputIndex: 0, scriptCode: script, valueSat: ch.capacitySat });
  }

  async #setupChannel(request: SetupChannelRequest, context: CommandContext): Promise<Uint8Array> {
    const state = this.#state!;
    if ((request.oneway === undefined) === (request.rsmc === undefined)) {
      throw new PolicyRefusal('policy-setup-invalid', 'a setup is either one-way or revocable');
    }
    if (request.rsmc && request.rsmc.minFeeratePerKw > request.rsmc.maxFeeratePerKw) {
      throw new PolicyRefusal('policy-setup-invalid', 'the fee range is empty');
    }
    // The terms must build a refund at all (expiry, fee, capacity).
    if (request.oneway) checkOnewaySetup(onewayTerms(channelOf(request), (await this.#ownBasepoints(request.keyIndex)).fundingPubkey));
    const existing = state.channels.find((c) => c.keyIndex === request.keyIndex);
    if (existing) {
      // [K-3] the same terms again are fine (a host resynchronising); other terms for the key index are not.
      if (equalBytes(setupBytes(channelOf(request)), setupBytes(existing))) return ok(COMMAND_TYPES[KeyCommand.SETUP_CHANNEL].response, {});
      throw new PolicyRefusal('policy-setup-conflict', `channel ${request.keyIndex} is set up with other terms`);
    }
    if (state.channels.length >= MAX_KEY_CHANNELS) throw new PolicyRefusal('policy-too-many-channels', `this key follows at most ${MAX_KEY_CHANNELS} channels`);
    await this.#confirm({ kind: 'setup-channel', summary: describeSetup(request) }, context);
    await this.#commit({ ...state, channels: [...state.channels, channelOf(request)] }, context);
    return ok(COMMAND_TYPES[KeyCommand.SETUP_CHANNEL].response, {});
  }

  async #confirm(request: ConfirmRequest, context: CommandContext): Promise<void> {
    context.setStatus(2);
    let approved: boolean;
    try {
      approved = await this.#o.confirm.confirm(request, context.signal);
    } finally {
      context.setStatus(1);
    }
    if (context.signal.aborted) throw new CommandFailure(KeyStatus.CANCELLED, 'cancelled', 'the host cancelled');
    if (!approved) throw new CommandFailure(KeyStatus.DENIED, 'denied', 'the user did not confirm');
  }

  /** [K-1] Store the next state; the answer goes out only after this resolves. */
  async #commit(next: KeyState, context: CommandContext): Promise<void> {
    if (context.signal.aborted) throw new CommandFailure(KeyStatus.CANCELLED, 'cancelled', 'the host cancelled');
    try {
      await this.#o.storage.commit(encodeKeyState(next));
    } catch (error) {
      throw new CommandFailure(KeyStatus.STORAGE, 'storage', `the new state could not be stored: ${(error as Error).message}`);
    }
    this.#state = next;
  }
}

/** BOLT 3 commitment numbers are 48 bits; a larger one is a malformed request, answered before any derivation. */
function checkCommitmentNumber(n: bigint): void {
  if (n > MAX_COMMITMENT_NUMBER) throw new CommandFailure(KeyStatus.BAD_REQUEST, 'out_of_range', 'a commitment number has 48 bits (BOLT 3)');
}

function ok<T>(type: Parameters<typeof encodeBody<T>>[0], body: T): Uint8Array {
  return encodeResponse(KeyStatus.OK, encodeBody(type, body));
}

function locator(family: KeyFamily, index: number): KeyLocator {
  return { family, index };
}

function replaceChannel(state: KeyState, ch: ChannelState): ChannelState[] {
  return state.channels.map((c) => (c.keyIndex === ch.keyIndex ? ch : c));
}

function channelOf(request: SetupChannelRequest): ChannelState {
  return {
    keyIndex: request.keyIndex,
    fundingTxid: request.fundingTxid,
    fundingVout: request.fundingVout,
    capacitySat: request.capacitySat,
    ...(request.oneway ? { oneway: request.oneway } : {}),
    ...(request.rsmc ? { rsmc: request.rsmc } : {}),
  };
}

/** The setup part of a channel, encoded: two setups are the same terms when these bytes are equal. */
function setupBytes(ch: ChannelState): Uint8Array {
  const { keyIndex, fundingTxid, fundingVout, capacitySat, oneway, rsmc } = ch;
  return encodeBody(COMMAND_TYPES[KeyCommand.SETUP_CHANNEL].request, { keyIndex, fundingTxid, fundingVout, capacitySat, ...(oneway ? { oneway } : {}), ...(rsmc ? { rsmc } : {}) });
}

export function policyHash(policy: KeyPolicy): Uint8Array {
  return sha256(encodeStruct(policyType, policy));
}

function channelStateOf(ch: ChannelState): ChannelStateResponse {
  if (ch.oneway) {
    const s = ch.onewayState ?? { stateNumber: 0n, amountMsat: 0n };
    return { kind: 'oneway', stateNumber: s.stateNumber, amountMsat: s.amountMsat };
  }
  const s = ch.rsmcState;
  const out: ChannelStateResponse = { kind: 'rsmc' };
  if (s?.holderNumber !== undefined) out.holderNumber = s.holderNumber;
  if (s?.holderRevoked !== undefined) out.holderRevoked = s.holderRevoked;
  if (s?.counterpartyNumber !== undefined) out.counterpartyNumber = s.counterpartyNumber;
  if (s?.counterpartyRevoked !== undefined) out.counterpartyRevoked = s.counterpartyRevoked;
  return out;
}

function describeSetup(request: SetupChannelRequest): string {
  const outpoint = `${hashToTxid(request.fundingTxid)}:${request.fundingVout}`;
  if (request.oneway) {
    const o = request.oneway;
    return `one-way channel ${request.keyIndex}: pay up to ${request.capacitySat} sat from ${outpoint} to script ${bytesToHex(o.payeeScript)}; refund to ${bytesToHex(o.payerScript)} at block ${o.expiryHeight}; ${o.feerateSatPerVb} sat/vB`;
  }
  const r = request.rsmc!;
  return `revocable channel ${request.keyIndex} (${r.opener ? 'we open' : 'peer opens'}): ${request.capacitySat} sat at ${outpoint}; delays ${r.localDelay}/${r.remoteDelay} blocks; fee ${r.minFeeratePerKw}..${r.maxFeeratePerKw} sat/kw; close to ${bytesToHex(r.closeScript)}, sweeps to ${bytesToHex(r.sweepScript)}`;
}

function describePolicy(p: KeyPolicy): string {
  return `at most ${p.maxPaymentMsat} msat per signature and ${p.maxPeriodMsat} msat per ${p.periodSeconds} s; no one-way payment within ${p.expirySafetyBlocks} blocks of its refund`;
}

const COMMAND_NAMES = new Map<number, string>(Object.entries(KeyCommand).map(([name, code]) => [code, name]));

function commandName(command: number): string {
  return COMMAND_NAMES.get(command) ?? `0x${command.toString(16)}`;
}
