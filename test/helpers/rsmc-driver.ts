/**
 * Drives two revocable-channel machines (src/channel/rsmc/machine.ts) directly, with real signers and a
 * Simnet, and full control over message delivery: the test decides which message is delivered, dropped,
 * duplicated or when a side "restarts" (its record goes back to the last persisted one). Used by the
 * machine tests and the fast-check property test; the runtime (RsmcNode) has its own tests over MQTT.
 */
import { Transaction } from 'bitcoinjs-lib';
import { Simnet } from '../../src/chain/simnet/index.js';
import { p2wpkhOutput, p2wpkhScriptCode } from '../../src/onchain/script.js';
import { hashToTxid, signInput } from '../../src/onchain/tx.js';
import { SoftwareSigner } from '../../src/signer/software.js';
import type { KeyLocator } from '../../src/signer/port.js';
import type { WireMessage } from '../../src/wire/index.js';
import type { NodeId } from '../../src/transport/port.js';
import { fundingScriptOf, localCommitment, withFundingWitness } from '../../src/channel/rsmc/commitments.js';
import { accepterStart, DEFAULT_RSMC_POLICY, openerStart, rsmcStep } from '../../src/channel/rsmc/machine.js';
import { buildResolution } from '../../src/channel/rsmc/onchain.js';
import { decodeRecord, encodeRecord } from '../../src/channel/rsmc/state.js';
import type { RsmcEffect, RsmcEvent, RsmcInput, RsmcPolicy, RsmcRecord } from '../../src/channel/rsmc/types.js';

export const TEST_POLICY: RsmcPolicy = { ...DEFAULT_RSMC_POLICY, toSelfDelay: 6, minimumDepth: 1, maxContributionSat: 10_000_000n };

export interface DriverSide {
  name: 'a' | 'b';
  signer: SoftwareSigner;
  record: RsmcRecord | undefined;
  /** The record as last persisted (what a restart comes back with). */
  durable: RsmcRecord | undefined;
  /** Messages sent to this side, not yet delivered. */
  inbox: WireMessage[];
  events: RsmcEvent[];
  /** Every commitment number we signed for the peer, with the txid signed (the "never two different" check). */
  signedRemote: Map<bigint, string>;
  /** Secrets this side released, by commitment number. */
  released: Set<bigint>;
  persists: number;
  /** How many times this side released the coins it contributed to a funding. */
  coinReleases: number;
}

/** Thrown by the driver where `crashAfterPersist` says the process dies (right after a persist). */
export class DriverCrash extends Error {}

const KEY_INDEX = 7;

function loc(family: KeyLocator['family']): KeyLocator {
  return { family, index: KEY_INDEX };
}

export class RsmcDriver {
  readonly chain = new Simnet();
  readonly a: DriverSide;
  readonly b: DriverSide;
  tip = 0;
  /** Effects and messages are traced here when set (debugging). */
  trace: string[] | undefined;
  /** Sides whose chain view lags: their funding checks see the funding unconfirmed (as a slower poller would). */
  readonly lagging = new Set<'a' | 'b'>();
  /** When it answers true the side "dies" right after that persist: DriverCrash is thrown; then `restart` it. */
  crashAfterPersist: ((s: DriverSide, reason: string) => boolean) | undefined;

  constructor(seedA = 0x11, seedB = 0x22) {
    this.a = side('a', seedA);
    this.b = side('b', seedB);
  }

  /** An independent copy of both sides (records, inboxes, histories) on the same chain: for property runs. */
  fork(): RsmcDriver {
    const d = Object.create(RsmcDriver.prototype) as RsmcDriver;
    const clone = (s: DriverSide): DriverSide => ({
      ...s,
      inbox: [...s.inbox],
      events: [],
      signedRemote: new Map(s.signedRemote),
      released: new Set(s.released),
    });
    Object.assign(d, { chain: this.chain, a: clone(this.a), b: clone(this.b), tip: this.tip, trace: undefined, crashAfterPersist: undefined, lagging: new Set() });
    return d;
  }

  other(s: DriverSide): DriverSide {
    return s === this.a ? this.b : this.a;
  }

  /** Open a channel A → B (A funds `localSat`, asks B for `remoteSat`), run to 'open'. */
  async open(localSat: bigint, remoteSat = 0n, pushMsat = 0n, stopWhen?: (d: RsmcDriver) => boolean): Promise<void> {
    this.tip = (await this.chain.tipHeight());
    const step = openerStart(
      {
        peer: nodeIdOf(this.b),
        tempChannelId: new Uint8Array(32).fill(0x42),
        keyIndex: KEY_INDEX,
        basepoints: await basepoints(this.a.signer),
        firstPoint: await this.a.signer.perCommitmentPoint(loc('commitment'), 0n),
        secondPoint: await this.a.signer.perCommitmentPoint(loc('commitment'), 1n),
        fundingSat: localSat,
        requestedRemoteSat: remoteSat,
        pushMsat,
        feeratePerKw: 1000n,
        payoutScript: p2wpkhOutput(await this.a.signer.getPublicKey({ family: 'wallet', index: 0 })),
      },
      TEST_POLICY,
    );
    this.a.record = step.record;
    await this.execute(this.a, step.effects);
    // B answers open_channel.
    const open = this.a.inbox.length === 0 ? this.b.inbox.shift()! : undefined;
    if (!open || open.type !== 'open_channel') throw new Error('expected open_channel');
    const result = accepterStart(
      open,
      {
        peer: nodeIdOf(this.a),
        keyIndex: KEY_INDEX,
        basepoints: await basepoints(this.b.signer),
        firstPoint: await this.b.signer.perCommitmentPoint(loc('commitment'), 0n),
        secondPoint: await this.b.signer.perCommitmentPoint(loc('commitment'), 1n),
        payoutScript: p2wpkhOutput(await this.b.signer.getPublicKey({ family: 'wallet', index: 0 })),
      },
      { tipHeight: this.tip, policy: TEST_POLICY },
    );
    if (!result.ok) throw new Error(`accepter refused: ${result.message}`);
    this.b.record = result.step.record;
    await this.execute(this.b, result.step.effects);
    if (stopWhen) {
      // Deliver one message at a time and leave the open where `stopWhen` holds.
      while (!stopWhen(this)) {
        if (!(await this.deliverOne(this.a)) && !(await this.deliverOne(this.b))) throw new Error('the open stopped before stopWhen held');
      }
      return;
    }
    await this.deliverAll();
    await this.mine(1);
    await this.deliverAll();
    if (this.a.record?.phase !== 'open' || this.b.record?.phase !== 'open') {
      throw new Error(`open failed: a=${this.a.record?.phase} ${this.a.record?.failure?.message ?? ''} b=${this.b.record?.phase} ${this.b.record?.failure?.message ?? ''}`);
    }
  }

  async mine(blocks: number): Promise<void> {
    await this.chain.mine(blocks);
    this.tip = await this.chain.tipHeight();
    for (const s of [this.a, this.b]) if (s.record) await this.apply(s, { kind: 'block', height: this.tip });
  }

  /** Feed an input to a side and run the resulting effects. */
  async apply(s: DriverSide, input: RsmcInput): Promise<void> {
    if (!s.record) return;
    const step = rsmcStep(s.record, input, { tipHeight: this.tip, policy: TEST_POLICY });
    s.record = step.record;
    await this.execute(s, step.effects);
  }

  /** Deliver the oldest message in `s`'s inbox. */
  async deliverOne(s: DriverSide): Promise<boolean> {
    const message = s.inbox.shift();
    if (!message) return false;
    this.trace?.push(`${this.other(s).name}→${s.name} ${message.type}`);
    await this.apply(s, { kind: 'message', message });
    return true;
  }

  /** Deliver messages both ways until both inboxes are empty. */
  async deliverAll(limit = 10_000): Promise<void> {
    for (let i = 0; i < limit; i++) {
      const progressed = (await this.deliverOne(this.a)) || (await this.deliverOne(this.b));
      if (!progressed) return;
    }
    throw new Error('message storm: no quiescence');
  }

  /** A process restart: the side comes back with its last durable record; its unsent messages are gone. */
  async restart(s: DriverSide): Promise<void> {
    s.record = s.durable;
    this.other(s).inbox.length = 0; // what it had not sent yet
    s.inbox.length = 0; // what was in flight to it is lost with its session
    if (s.record) {
      // As the runtime does on load: the next point from the signer, then a fresh session.
      const lc = s.record.localCommit;
      if (lc) s.record = { ...s.record, localNextPoint: await s.signer.perCommitmentPoint(loc('commitment'), lc.number + 1n) };
      await this.apply(s, { kind: 'disconnected' });
    }
  }

  /** Run `action` until `s` dies right after a persist `when` accepts (it must), then restart `s`. */
  async killAfterPersist(s: DriverSide, when: (reason: string, record: RsmcRecord) => boolean, action: () => Promise<void>): Promise<void> {
    this.crashAfterPersist = (side, reason) => side === s && when(reason, side.record!);
    try {
      await action();
      throw new Error(`${s.name} was never killed`);
    } catch (error) {
      if (!(error instanceof DriverCrash)) throw error;
    } finally {
      this.crashAfterPersist = undefined;
    }
    await this.restart(s);
  }

  /** Both sides see a new session (after a restart or a session loss). */
  async reconnect(): Promise<void> {
    for (const s of [this.a, this.b]) await this.apply(s, { kind: 'disconnected' });
    for (const s of [this.a, this.b]) await this.apply(s, { kind: 'connected' });
  }

  async execute(s: DriverSide, effects: RsmcEffect[]): Promise<void> {
    for (const effect of effects) {
      const r = s.record!;
      switch (effect.kind) {
        case 'persist':
          // Through the real codec: what a restart reads back (unsigned updates are not stored).
          s.durable = decodeRecord(encodeRecord(r));
          s.persists++;
          if (this.crashAfterPersist?.(s, effect.reason)) throw new DriverCrash(`${s.name} killed after persisting ${effect.reason}`);
          break;
        case 'send':
          this.other(s).inbox.push(effect.message);
          break;
        case 'sign-remote-commitment': {
          const tx = Transaction.fromBuffer(Buffer.from(effect.tx));
          const previous = s.signedRemote.get(effect.number);
          const txid = hashToTxid(tx.getHash());
          if (previous !== undefined && previous !== txid) throw new Error(`${s.name} signed two different commitments numbered ${effect.number}`);
          s.signedRemote.set(effect.number, txid);
          const signature = await s.signer.signInput({ key: loc('funding'), tx: effect.tx, inputIndex: 0, scriptCode: fundingScriptOf(r), valueSat: r.fundingSat });
          await this.apply(s, { kind: 'commitment-signature', number: effect.number, signature });
          break;
        }
        case 'release-secret': {
          if (r.localCommit && effect.number >= r.localCommit.number) throw new Error(`${s.name} asked to reveal the secret of its current commitment`);
          if (!s.durable?.localCommit || s.durable.localCommit.number <= effect.number) throw new Error(`${s.name} revokes ${effect.number} before the next commitment is durable`);
          s.released.add(effect.number);
          const { secret } = await s.signer.revokeCommitment(loc('commitment'), effect.number);
          const nextPoint = await s.signer.perCommitmentPoint(loc('commitment'), effect.number + 2n);
          await this.apply(s, { kind: 'secret-released', number: effect.number, secret, nextPoint });
          break;
        }
        case 'select-coins': {
          const pubkey = await s.signer.getPublicKey({ family: 'wallet', index: 0 });
          const outpoint = await this.chain.faucetToPubkey(pubkey, effect.amountSat + 50_000n);
          await this.apply(s, {
            kind: 'coins',
            coins: [{ outpoint, valueSat: effect.amountSat + 50_000n, pubkey, key: { family: 'wallet', index: 0 } }],
            changeScript: p2wpkhOutput(pubkey),
          });
          break;
        }
        case 'sign-funding-inputs': {
          const tx = Transaction.fromBuffer(Buffer.from(r.fundingTx!));
          for (let i = 0; i < tx.ins.length; i++) {
            const input = tx.ins[i]!;
            const coin = r.localInputs.find((c) => c.coin.outpoint.txid === hashToTxid(input.hash) && c.coin.outpoint.vout === input.index)?.coin;
            if (!coin) continue;
            const sig = await signInput(s.signer, tx, { key: coin.key, inputIndex: i, scriptCode: p2wpkhScriptCode(coin.pubkey), valueSat: coin.valueSat });
            tx.setWitness(i, [sig, coin.pubkey]);
          }
          await this.apply(s, { kind: 'funding-inputs-signed', tx: Uint8Array.from(tx.toBuffer()) });
          break;
        }
        case 'release-coins':
          s.coinReleases++;
          break;
        case 'sign-closing': {
          const signature = await s.signer.signInput({ key: loc('funding'), tx: effect.tx, inputIndex: 0, scriptCode: fundingScriptOf(r), valueSat: r.fundingSat });
          await this.apply(s, { kind: 'closing-signature', feeSat: effect.feeSat, signature });
          break;
        }
        case 'broadcast-commitment': {
          const tx = await this.signedCommitment(s);
          const result = await this.chain.broadcast(tx);
          await this.apply(s, { kind: 'broadcast-result', purpose: 'commitment', txid: result.txid, result });
          break;
        }
        case 'broadcast': {
          const result = await this.chain.broadcast(effect.tx);
          await this.apply(s, { kind: 'broadcast-result', purpose: effect.purpose, txid: result.txid, result });
          break;
        }
        case 'resolve': {
          const resolution = await buildResolution(r, r.closing!, effect.output, s.signer, 1000n);
          await this.apply(s, { kind: 'resolution', resolution });
          const result = await this.chain.broadcast(resolution.tx);
          await this.apply(s, { kind: 'broadcast-result', purpose: resolution.purpose, txid: result.txid, result });
          break;
        }
        case 'watch':
          break;
        case 'check-funding': {
          if (!r.fundingOutpoint) break;
          const found = await this.chain.getUtxo(r.fundingOutpoint);
          const utxo = found && this.lagging.has(s.name) ? { ...found, blockHeight: undefined } : found;
          await this.apply(s, { kind: 'funding-status', utxo, tipHeight: await this.chain.tipHeight() });
          break;
        }
        case 'event':
          s.events.push(effect.event);
          break;
      }
    }
  }

  /** The side's current commitment with both signatures (what it would broadcast). */
  async signedCommitment(s: DriverSide): Promise<Uint8Array> {
    const r = s.record!;
    const lc = r.localCommit!;
    const point = await s.signer.perCommitmentPoint(loc('commitment'), lc.number);
    const commitment = localCommitment(r, lc.number, lc.spec, point);
    if (commitment.txid !== lc.txid) throw new Error('rebuilt commitment differs from the stored txid');
    const ours = await s.signer.signInput({ key: loc('funding'), tx: Uint8Array.from(commitment.tx.toBuffer()), inputIndex: 0, scriptCode: fundingScriptOf(r), valueSat: r.fundingSat });
    return Uint8Array.from(withFundingWitness(r, commitment.tx, ours, lc.remoteSignature).toBuffer());
  }

  /** Tell both sides about a spend of the funding output (as the runtime's chain watcher would). */
  async reportFundingSpend(tx: Uint8Array, height: number | undefined): Promise<void> {
    for (const s of [this.a, this.b]) await this.apply(s, { kind: 'funding-spent', tx, height });
  }
}

function side(name: 'a' | 'b', seed: number): DriverSide {
  return {
    name,
    signer: SoftwareSigner.fromSeed(new Uint8Array(32).fill(seed)),
    record: undefined,
    durable: undefined,
    inbox: [],
    events: [],
    signedRemote: new Map(),
    released: new Set(),
    persists: 0,
    coinReleases: 0,
  };
}

async function basepoints(signer: SoftwareSigner) {
  return {
    fundingPubkey: await signer.getPublicKey(loc('funding')),
    revocationBasepoint: await signer.getPublicKey(loc('revocation')),
    paymentBasepoint: await signer.getPublicKey(loc('payment')),
    delayedPaymentBasepoint: await signer.getPublicKey(loc('delayed')),
    htlcBasepoint: await signer.getPublicKey(loc('htlc')),
  };
}

function nodeIdOf(s: DriverSide): NodeId {
  return (s.name === 'a' ? '02' + 'aa'.repeat(32) : '03' + 'bb'.repeat(32)) as NodeId;
}

/** Invariant checks on a side's record (issue 6, point 6). */
export function checkInvariants(s: DriverSide): void {
  const r = s.record;
  if (!r?.localCommit || !r.remoteCommit) return;
  const cap = r.fundingSat * 1000n;
  for (const [name, spec] of [['localCommit', r.localCommit.spec], ['remoteCommit', r.remoteCommit.spec], ['remoteNext', r.remoteNext?.spec]] as const) {
    if (spec && spec.localMsat + spec.remoteMsat !== cap) throw new Error(`${s.name}.${name}: balances ${spec.localMsat}+${spec.remoteMsat} ≠ capacity ${cap}`);
    if (spec && (spec.localMsat < 0n || spec.remoteMsat < 0n)) throw new Error(`${s.name}.${name}: negative balance`);
  }
  for (const n of s.released) if (n >= r.localCommit.number) throw new Error(`${s.name} released the secret of commitment ${n}, current is ${r.localCommit.number}`);
}
