/**
 * One-way (Spillman) channels end to end over real MQTT brokers — the embedded aedes always, and a real
 * Mosquitto when installed — on the in-process Simnet (docs/protocol.md §3.2–§3.3):
 *   1. the whole life: offer, open (funding signed only after the refund signature is durable), payments
 *      (each acknowledged and stored), close, settlement; every satoshi accounted for on chain;
 *   2. the provider vanishes: the device's refund is refused by the chain as non-final until the expiry
 *      height, then goes out and confirms ('refunded');
 *   3. the device vanishes: the provider settles by itself once the tip is within settleMarginBlocks;
 *   4. crafted `oneway_pay` messages (replays, lower amounts, forged or foreign signatures, re-targeted
 *      channel ids, over capacity) change nothing on the payee and each earns a `warning` with its code;
 *   5. a settlement transaction changed in any output is refused by the chain's script check;
 *   6. the device's connection is cut mid-stream: payments continue, none lost, none counted twice.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Transaction } from 'bitcoinjs-lib';
import { equalBytes } from '../src/bytes.js';
import { Simnet } from '../src/chain/simnet/index.js';
import type { OnewayChannel } from '../src/channel/oneway/channel.js';
import type { ChannelEvent } from '../src/channel/oneway/core.js';
import { CHANNEL_WIRE_CODES, ChannelError, type ChannelErrorCode } from '../src/channel/oneway/errors.js';
import { decodeRecord, recordKey, type OnewayRecord, type PayeeRecord, type PayerRecord } from '../src/channel/oneway/state.js';
import {
  channelTerms,
  fundingScriptOf,
  paymentTransaction,
  refundTransaction,
  satPerVbFromPerKw,
  scriptSignatureFromCompact,
  verifyFundingSpend,
} from '../src/channel/oneway/terms.js';
import { fundingWitness } from '../src/onchain/funding.js';
import { maxPaymentMsat } from '../src/onchain/oneway.js';
import { p2wpkhOutput } from '../src/onchain/script.js';
import { SoftwareSigner } from '../src/signer/software.js';
import { MemoryStore } from '../src/store/memory.js';
import type { NodeId } from '../src/transport/port.js';
import { encodeMessage, type OnewayPayAckMsg, type OnewayPayMsg, type WarningMsg, type WireMessage } from '../src/wire/index.js';
import { brokerFactories, startTcpProxy, type BrokerFactory, type TestBroker } from './helpers/brokers.js';
import {
  OFFER,
  fundWallet,
  recordingChain,
  startMqttParty,
  stopParty,
  type Party,
  walletTotalSat,
  type RecordingChain,
} from './helpers/oneway-parties.js';
import { until } from './helpers/session-nodes.js';

const CAPACITY_SAT = 200_000n;
/** The payee's default policy: one confirmation, settle 6 blocks before expiry. */
const MINIMUM_DEPTH = 1;
const SETTLE_MARGIN = 6;

const versionFor = (broker: TestBroker): 4 | 5 => (broker.name === 'mosquitto' ? 5 : 4);

interface World {
  chain: Simnet;
  broker: TestBroker;
  provider: Party;
  device: Party;
  providerChain: RecordingChain;
  deviceChain: RecordingChain;
  /** Stopped (in order) before the broker when the test ends; add any extra party here. */
  parties: Party[];
}

/** A broker, a provider announcing OFFER and a funded device; everything is torn down after the test. */
async function world(
  t: TestContext,
  factory: BrokerFactory,
  options: {
    chain?: Simnet;
    deviceUrl?: (broker: TestBroker) => Promise<string>;
    deviceStore?: MemoryStore;
    deviceBroadcast?: (tx: Uint8Array, tipHeight: number) => void | Promise<void>;
    deviceNode?: Parameters<typeof startMqttParty>[0]['node'];
    providerNode?: Parameters<typeof startMqttParty>[0]['node'];
    session?: Parameters<typeof startMqttParty>[0]['session'];
    deviceCoins?: number;
  } = {},
): Promise<World> {
  const chain = options.chain ?? new Simnet();
  const broker = await factory.start();
  const parties: Party[] = [];
  t.after(async () => {
    for (const party of parties) await stopParty(party);
    await broker.stop();
  });
  const providerChain = recordingChain(chain);
  const deviceChain = recordingChain(chain, options.deviceBroadcast);
  const protocolVersion = versionFor(broker);
  const common = { protocolVersion, ...(options.session ? { session: options.session } : {}) };
  const provider = await startMqttParty({
    seed: 1,
    chain: providerChain,
    url: broker.url,
    offers: [OFFER],
    ...common,
    ...(options.providerNode ? { node: options.providerNode } : {}),
  });
  parties.push(provider);
  const deviceUrl = options.deviceUrl ? await options.deviceUrl(broker) : broker.url;
  const device = await startMqttParty({
    seed: 2,
    chain: deviceChain,
    url: deviceUrl,
    ...common,
    ...(options.deviceStore ? { store: options.deviceStore } : {}),
    ...(options.deviceNode ? { node: options.deviceNode } : {}),
  });
  parties.push(device);
  for (let i = 0; i < (options.deviceCoins ?? 1); i++) await fundWallet(chain, device, 1_000_000n);
  await until(() => device.messenger.directory().has(provider.messenger.nodeId), 'the provider announcement over MQTT');
  return { chain, broker, provider, device, providerChain, deviceChain, parties };
}

/** Open from `payer` to the provider and return both ends once both are open. */
async function openChannel(
  w: { chain: Simnet; provider: Party },
  payer: Party,
  payerChain: RecordingChain,
  expiryBlocks = 100,
): Promise<{ ch: OnewayChannel; payeeCh: OnewayChannel }> {
  const fundings = payerChain.broadcasts.length;
  const opening = payer.node.open(w.provider.messenger.nodeId, { capacitySat: CAPACITY_SAT, expiryBlocks });
  await until(() => payerChain.broadcasts.length > fundings, 'the funding broadcast');
  assert.equal(payerChain.broadcasts.at(-1)!.result.accepted, true, 'funding accepted by the chain');
  await w.chain.mine(MINIMUM_DEPTH);
  const ch = await opening;
  const payeeCh = w.provider.node.channel(ch.id);
  assert.ok(payeeCh, 'the provider knows the channel by the same id');
  await until(() => payeeCh.phase === 'open', 'the provider side open');
  return { ch, payeeCh };
}

async function storedRecord(party: Party, ch: OnewayChannel): Promise<{ bytes: Uint8Array; record: OnewayRecord }> {
  const snapshot = ch.snapshot();
  const bytes = await party.store.get(recordKey(snapshot.role, snapshot.tempChannelId));
  assert.ok(bytes, `a stored ${snapshot.role} record`);
  return { bytes, record: decodeRecord(bytes) };
}

/** The payer's signature share over a funding spend, as its node would make it. */
async function signFundingSpend(signer: SoftwareSigner, record: OnewayRecord, tx: Transaction): Promise<Uint8Array> {
  return signer.signInput({
    key: { family: 'funding', index: record.fundingKeyIndex },
    tx: tx.toBuffer(),
    inputIndex: 0,
    scriptCode: fundingScriptOf(record),
    valueSat: record.capacitySat,
  });
}

/**
 * Resolves once the channel's input queue has handled everything queued before this call (chain blocks
 * included): a command goes through the same FIFO queue, and pay() on a channel that is not open is
 * refused only when its turn comes.
 */
async function queueDrained(ch: OnewayChannel): Promise<void> {
  await assert.rejects(ch.pay(1n), (e: unknown) => e instanceof ChannelError && e.code === 'BAD_STATE');
}

function isFaucet(tx: Transaction): boolean {
  return tx.ins.length === 1 && tx.ins[0]!.index === 0xffffffff && tx.ins[0]!.hash.every((b) => b === 0);
}

/** Every confirmed transaction that is not a faucet coin, in chain order. */
async function nonFaucetTransactions(chain: Simnet): Promise<Transaction[]> {
  const found: Transaction[] = [];
  for (let height = 1; height <= (await chain.tipHeight()); height++) {
    for (const txid of chain.getBlock(height)!.txids) {
      const tx = Transaction.fromBuffer(Buffer.from((await chain.getTransaction(txid))!.tx));
      if (!isFaucet(tx)) found.push(tx);
    }
  }
  return found;
}

function spendsOutpoint(tx: Transaction, outpoint: { txid: string; vout: number }): boolean {
  return tx.ins.some((i) => Buffer.from(i.hash).reverse().toString('hex') === outpoint.txid && i.index === outpoint.vout);
}

for (const factory of brokerFactories({ includeSkipped: true })) {
  test(`[§3.2][§3.3] lifecycle over ${factory.name}: refund before funding, acknowledged payments, settlement accounts for every satoshi`, { skip: factory.skip }, async (t) => {
    const deviceStore = new MemoryStore();
    const fundingChecks: Array<{ phase: string; refundVerifies: boolean; alreadyOnChain: boolean }> = [];
    const chain = new Simnet();
    const w = await world(t, factory, {
      chain,
      deviceStore,
      // At the moment the device lets its funding go, its stored record must already hold a valid refund.
      deviceBroadcast: async (tx) => {
        const txid = Transaction.fromBuffer(Buffer.from(tx)).getId();
        for (const entry of await deviceStore.list('oneway/payer/')) {
          const record = decodeRecord(entry.value) as PayerRecord;
          if (record.fundingOutpoint?.txid !== txid) continue;
          fundingChecks.push({
            phase: record.phase,
            refundVerifies: record.refundSignature !== undefined &&
              verifyFundingSpend(record, refundTransaction(record), record.payeeFundingPubkey!, record.refundSignature),
            alreadyOnChain: (await chain.getTransaction(txid)) !== undefined,
          });
        }
      },
    });
    const { provider, device } = w;
    const balanceBefore = await walletTotalSat(device.wallet);

    // The order of the open, seen from the device's phase events: nothing in the mempool until the refund is held.
    const phases: Array<{ phase: string; mempool: string[]; holdsRefund: boolean }> = [];
    device.node.onEvent((channel, event) => {
      if (event.type === 'phase') phases.push({ phase: event.phase, mempool: chain.mempool(), holdsRefund: channel.snapshot().refundSignature !== undefined });
    });

    const { ch, payeeCh } = await openChannel(w, device, w.deviceChain);
    const fundingTxid = ch.fundingTxid!;
    assert.deepEqual(phases.map((p) => p.phase), ['proposed', 'accepted', 'refund_held', 'funded', 'open']);
    for (const p of phases.slice(0, 3)) {
      assert.deepEqual(p.mempool, [], `nothing broadcast while ${p.phase}`);
    }
    assert.deepEqual(phases.map((p) => p.holdsRefund), [false, false, true, true, true]);
    assert.deepEqual(phases[3]!.mempool, [fundingTxid], 'the funding enters the mempool only once the refund is held');
    assert.deepEqual(fundingChecks, [{ phase: 'refund_held', refundVerifies: true, alreadyOnChain: false }],
      'the one funding broadcast happened with a verified refund signature already stored');

    const increments = [1_000_001n, 2_345_678n, 999n, 10_000_000n, 555_555n];
    let paidMsat = 0n;
    for (const [i, increment] of increments.entries()) {
      paidMsat += increment;
      const receipt = await ch.pay(increment);
      assert.deepEqual(receipt, { paymentNumber: BigInt(i + 1), amountMsat: paidMsat });
      assert.equal(ch.paidMsat, paidMsat, 'payer: acknowledged amount');
      assert.equal(payeeCh.paidMsat, paidMsat, 'payee: stored amount equals the acknowledged one');
      assert.equal(payeeCh.payments, BigInt(i + 1));
      // What the provider stored is a payment it can settle with: the payer's signature verifies.
      const stored = (await storedRecord(provider, payeeCh)).record as PayeeRecord;
      assert.equal(stored.payment.amountMsat, paidMsat);
      assert.equal(stored.payment.number, BigInt(i + 1));
      assert.ok(verifyFundingSpend(stored, paymentTransaction(stored, paidMsat), stored.payerFundingPubkey, stored.payment.signature!));
    }

    const closing = ch.close();
    await until(() => w.providerChain.broadcasts.length > 0, 'the settlement broadcast');
    const settlement = w.providerChain.broadcasts[0]!;
    assert.equal(settlement.result.accepted, true);
    assert.deepEqual(chain.mempool(), [settlement.txid]);
    await chain.mine(1);
    const outcome = await closing;
    const payeeOutcome = await payeeCh.waitForOutcome();

    // On chain: exactly the funding and the settlement, the settlement spending the funding output.
    const channelTxs = await nonFaucetTransactions(chain);
    assert.deepEqual(channelTxs.map((tx) => tx.getId()), [fundingTxid, settlement.txid]);
    const [fundingTx, settlementTx] = channelTxs as [Transaction, Transaction];
    const fundingVout = ch.snapshot().fundingOutpoint!.vout;
    assert.equal(fundingTx.outs[fundingVout]!.value, CAPACITY_SAT, 'the funding output locks exactly the capacity');
    assert.equal(settlementTx.ins.length, 1);
    assert.ok(spendsOutpoint(settlementTx, { txid: fundingTxid, vout: fundingVout }));

    const payeeScript = await provider.wallet.payoutScript();
    const payerScript = await device.wallet.payoutScript();
    assert.equal(settlementTx.outs.length, 2);
    const payeeOut = settlementTx.outs.find((o) => equalBytes(o.script, payeeScript))!;
    const payerOut = settlementTx.outs.find((o) => equalBytes(o.script, payerScript))!;
    assert.equal(payeeOut.value, paidMsat / 1000n, 'payee output = floor(paid msat / 1000)');
    // The fee is what the funding output held less what the settlement pays out.
    const feeSat = fundingTx.outs[fundingVout]!.value - payeeOut.value - payerOut.value;
    assert.equal(payeeOut.value + payerOut.value + feeSat, CAPACITY_SAT, 'payee + payer change + fee = capacity');
    // The fee is the agreed rate on the actual size (the estimate allows for 73-byte signatures: a few vB more).
    const satPerVb = satPerVbFromPerKw(ch.snapshot().feeratePerKw);
    const vsize = BigInt(Math.ceil(settlementTx.weight() / 4));
    assert.ok(feeSat >= vsize * satPerVb && feeSat <= (vsize + 2n) * satPerVb, `fee ${feeSat} sat for ${vsize} vB at ${satPerVb} sat/vB`);

    const expected = { kind: 'settled', txid: settlement.txid, payeeValueSat: payeeOut.value, payerValueSat: payerOut.value, feeSat };
    for (const o of [outcome, payeeOutcome]) {
      assert.ok(o);
      assert.deepEqual({ kind: o.kind, txid: o.txid, payeeValueSat: o.payeeValueSat, payerValueSat: o.payerValueSat, feeSat: o.feeSat }, expected);
    }

    // Every satoshi the device started with: in its wallet, with the provider, or paid as fees.
    const fundingIn = (await Promise.all(fundingTx.ins.map(async (i) => {
      const parent = Transaction.fromBuffer(Buffer.from((await chain.getTransaction(Buffer.from(i.hash).reverse().toString('hex')))!.tx));
      return parent.outs[i.index]!.value;
    }))).reduce((a, b) => a + b, 0n);
    const fundingFee = fundingIn - fundingTx.outs.reduce((a, o) => a + o.value, 0n);
    assert.equal(await walletTotalSat(device.wallet) + payeeOut.value + fundingFee + feeSat, balanceBefore);
    assert.ok((chain.utxosForScript(payeeScript)).some((u) => u.outpoint.txid === settlement.txid && u.output.valueSat === payeeOut.value));
    t.diagnostic(`${factory.name}: paid ${paidMsat} msat in ${increments.length} payments; payee got ${payeeOut.value} sat, change ${payerOut.value} sat, fee ${feeSat} sat`);
  });

  test(`[§3.2] provider vanishes over ${factory.name}: the refund is non-final before expiry, then confirms ('refunded')`, { skip: factory.skip }, async (t) => {
    const w = await world(t, factory);
    const { chain, provider, device } = w;
    const { ch } = await openChannel(w, device, w.deviceChain, 20);
    await ch.pay(1_500_000n);
    await ch.pay(2_500_000n);
    const expiryHeight = ch.expiryHeight;

    await stopParty(provider); // gone without settling
    const closing = ch.close();
    await until(() => ch.phase === 'closing', 'close requested');

    // The refund the device holds, completed with its own signature as the device will complete it.
    const record = ch.snapshot() as PayerRecord;
    const refund = refundTransaction(record);
    const payerSig = await signFundingSpend(device.signer, record, refund);
    refund.setWitness(0, fundingWitness(
      record.payerFundingPubkey,
      scriptSignatureFromCompact(payerSig),
      record.payeeFundingPubkey!,
      scriptSignatureFromCompact(record.refundSignature!),
    ));
    const refundRaw = Uint8Array.from(refund.toBuffer());

    await chain.mine(expiryHeight - 1 - (await chain.tipHeight()));
    assert.equal(await chain.tipHeight(), expiryHeight - 1);
    await queueDrained(ch);
    assert.equal(w.deviceChain.broadcasts.filter((b) => b.txid === refund.getId()).length, 0, 'having handled every block up to expiry - 1, the device has not tried its refund');
    const early = await chain.broadcast(refundRaw);
    assert.equal(early.accepted, false);
    assert.equal(!early.accepted && early.code, 'non-final', 'one block before expiry the chain refuses the refund');
    assert.deepEqual(chain.mempool(), []);

    await chain.mine(1); // tip = expiryHeight: final for the next block
    await until(() => w.deviceChain.broadcasts.some((b) => b.result.accepted && b.txid === refund.getId()), 'the device broadcasts its refund');
    const again = await chain.broadcast(refundRaw);
    assert.equal(!again.accepted && again.code, 'txn-already-in-mempool', 'the device sent the very same refund bytes');
    await chain.mine(1);
    const outcome = await closing;
    assert.ok(outcome);
    assert.equal(outcome.kind, 'refunded');
    assert.equal(outcome.txid, refund.getId());
    assert.equal(outcome.blockHeight, expiryHeight + 1);
    assert.equal(outcome.payeeValueSat, 0n);
    assert.equal(outcome.payerValueSat, refund.outs[0]!.value);
    assert.equal(outcome.payerValueSat + outcome.feeSat, CAPACITY_SAT);
    assert.equal(ch.phase, 'closed');

    // The device never tried early: every refund it broadcast was made at or after the expiry height.
    const refunds = w.deviceChain.broadcasts.filter((b) => b.txid === refund.getId());
    assert.ok(refunds.length >= 1);
    for (const b of refunds) {
      assert.ok(b.tipHeight >= expiryHeight, `refund broadcast at tip ${b.tipHeight}, expiry ${expiryHeight}`);
      assert.ok(b.result.accepted || b.result.code === 'txn-already-in-mempool' || b.result.code === 'txn-already-known', JSON.stringify(b.result));
    }
    assert.ok(!w.deviceChain.broadcasts.some((b) => !b.result.accepted && b.result.code === 'non-final'));
  });

  test(`[§3.3] device vanishes over ${factory.name}: the provider settles the latest payment ${SETTLE_MARGIN} blocks before expiry`, { skip: factory.skip }, async (t) => {
    const w = await world(t, factory);
    const { chain, device } = w;
    const { ch, payeeCh } = await openChannel(w, device, w.deviceChain, 20);
    const expiryHeight = ch.expiryHeight;
    await ch.pay(1_000_000n);
    await ch.pay(1_000_000n);

    // One block short of the margin: the provider still takes payments. Its channel queue handled every
    // block before this payment arrived, so the ack also proves it did not settle at these heights.
    await chain.mine(expiryHeight - SETTLE_MARGIN - 1 - (await chain.tipHeight()));
    const last = await ch.pay(3_456_789n);
    assert.equal(last.amountMsat, 5_456_789n);
    assert.equal(payeeCh.phase, 'open');
    assert.equal(w.providerChain.broadcasts.length, 0, 'no settlement yet');

    await stopParty(device); // gone without closing
    await chain.mine(1); // tip = expiry - margin
    await until(() => w.providerChain.broadcasts.length > 0, 'the provider settles by itself');
    const settlement = w.providerChain.broadcasts[0]!;
    assert.equal(settlement.result.accepted, true);
    assert.equal(settlement.tipHeight, expiryHeight - SETTLE_MARGIN, 'settled at the first height within the margin');
    const tx = Transaction.fromBuffer(Buffer.from(settlement.tx));
    const payeeScript = await w.provider.wallet.payoutScript();
    assert.equal(tx.outs.find((o) => equalBytes(o.script, payeeScript))?.value, 5_456n, 'the latest payment, floor(msat/1000)');

    await chain.mine(1);
    const outcome = await payeeCh.waitForOutcome();
    assert.ok(outcome);
    assert.equal(outcome.kind, 'settled');
    assert.equal(outcome.txid, settlement.txid);
    assert.equal(outcome.payeeValueSat, 5_456n);
    assert.equal(outcome.blockHeight, expiryHeight - SETTLE_MARGIN + 1, 'confirmed before the refund could be');
    assert.equal(payeeCh.paidMsat, 5_456_789n);
  });

  test(`[§3.3] crafted oneway_pay over ${factory.name}: replays, lower amounts, forged and foreign signatures, re-targeted ids, over capacity — all refused, nothing changed`, { skip: factory.skip }, async (t) => {
    const sentPays: OnewayPayMsg[] = [];
    const w = await world(t, factory, {
      deviceCoins: 2,
      deviceNode: { hooks: { afterSend: (m) => { if (m.type === 'oneway_pay') sentPays.push(m); } } },
    });
    const { chain, provider, device } = w;
    const providerId = provider.messenger.nodeId;

    // A second device, with its own channel to the same provider.
    const device2Chain = recordingChain(chain);
    const sentPays2: OnewayPayMsg[] = [];
    const device2 = await startMqttParty({
      seed: 3, chain: device2Chain, url: w.broker.url, protocolVersion: versionFor(w.broker),
      node: { hooks: { afterSend: (m) => { if (m.type === 'oneway_pay') sentPays2.push(m); } } },
    });
    w.parties.push(device2);
    await fundWallet(chain, device2, 1_000_000n);
    await until(() => device2.messenger.directory().has(providerId), 'announcement at device 2');

    const A = await openChannel(w, device, w.deviceChain);
    const B = await openChannel(w, device, w.deviceChain);
    const C = await openChannel(w, device2, device2Chain);
    assert.notEqual(A.ch.id, B.ch.id);
    for (const increment of [1_000_000n, 2_000_000n, 3_000_000n]) await A.ch.pay(increment);
    assert.equal(sentPays.length, 3);

    // What the device hears back, at the wire and as channel events.
    const warnings: WarningMsg[] = [];
    const acks: OnewayPayAckMsg[] = [];
    device.messenger.onMessage((peer, m) => {
      if (peer !== providerId) return;
      if (m.type === 'warning') warnings.push(m);
      if (m.type === 'oneway_pay_ack') acks.push(m);
    });
    const deviceEvents: Array<{ id: string; event: ChannelEvent }> = [];
    device.node.onEvent((channel, event) => deviceEvents.push({ id: channel.id, event }));

    type Snap = { bytes: Uint8Array; number: bigint; amountMsat: bigint };
    const snap = async (c: OnewayChannel): Promise<Snap> => {
      const { bytes, record } = await storedRecord(provider, c);
      assert.equal(c.payments, record.payment.number, 'in-memory and stored payee state agree');
      return { bytes, number: record.payment.number, amountMsat: record.payment.amountMsat };
    };
    const payees = [A.payeeCh, B.payeeCh, C.payeeCh];
    const before = await Promise.all(payees.map(snap));
    const assertPayeesUnchanged = async (what: string): Promise<void> => {
      const now = await Promise.all(payees.map(snap));
      for (let i = 0; i < payees.length; i++) {
        assert.deepEqual(now[i], before[i], `${what}: payee channel ${'ABC'[i]} unchanged (amount, number, stored bytes)`);
      }
    };
    const deviceA = () => ({ ...(A.ch.snapshot() as PayerRecord).payment, acked: (A.ch.snapshot() as PayerRecord).acked });
    const deviceABefore = deviceA();

    const counts: Partial<Record<ChannelErrorCode, number>> = {};
    const expectWarning = async (what: string, message: WireMessage, code: ChannelErrorCode, ownChannel: boolean): Promise<void> => {
      const seen = warnings.length;
      const ackCount = acks.length;
      const events = deviceEvents.length;
      await device.messenger.send(providerId, message);
      await until(() => warnings.length > seen, `warning for ${what}`);
      const warning = warnings[seen]!;
      assert.equal(warning.code, CHANNEL_WIRE_CODES[code], `${what}: code ${code}`);
      assert.ok(warning.channelId && equalBytes(warning.channelId, (message as OnewayPayMsg).channelId), `${what}: warning names the channel`);
      if (ownChannel) {
        // The device's runtime turns it into a 'rejected' event for that channel and changes nothing.
        await until(() => deviceEvents.length > events, `rejected event for ${what}`);
        assert.deepEqual(deviceEvents[events]!.event, { type: 'rejected', code, message: 'peer warning' });
      }
      assert.equal(acks.length, ackCount, `${what}: no acknowledgement`);
      await assertPayeesUnchanged(what);
      assert.deepEqual(deviceA(), deviceABefore, `${what}: the device's own record unchanged`);
      counts[code] = (counts[code] ?? 0) + 1;
    };

    // Payer-side records: their fundingKeyIndex is the payer's key (the payee numbers its own keys).
    const recordA = A.ch.snapshot();
    const recordB = B.ch.snapshot();
    const idA = recordA.channelId!;
    const idB = recordB.channelId!;
    const sigFor = (record: OnewayRecord, amountMsat: bigint, signer = device.signer, keyIndex = record.fundingKeyIndex) =>
      signer.signInput({
        key: { family: 'funding', index: keyIndex },
        tx: paymentTransaction(record, amountMsat).toBuffer(),
        inputIndex: 0,
        scriptCode: fundingScriptOf(record),
        valueSat: record.capacitySat,
      });
    const pay = (channelId: Uint8Array, paymentNumber: bigint, amountMsat: bigint, signature: Uint8Array): OnewayPayMsg =>
      ({ type: 'oneway_pay', channelId, paymentNumber, amountMsat, signature });

    // Replays: byte-identical older payments.
    await expectWarning('replay of payment 1', sentPays[0]!, 'PAYMENT_REPLAYED', true);
    await expectWarning('replay of payment 2', sentPays[1]!, 'PAYMENT_REPLAYED', true);

    // The exact duplicate of the latest payment is answered with the same ack again (idempotent).
    {
      const seen = acks.length;
      const warned = warnings.length;
      await device.messenger.send(providerId, sentPays[2]!);
      await until(() => acks.length > seen, 're-ack of the latest payment');
      assert.deepEqual(acks[seen], { type: 'oneway_pay_ack', channelId: idA, paymentNumber: 3n, amountMsat: 6_000_000n });
      assert.equal(warnings.length, warned);
      await assertPayeesUnchanged('duplicate of the latest payment');
    }

    // Lower (and equal) amounts under a higher number, with the payer's genuine signature for that amount.
    await expectWarning('lower amount, higher number', pay(idA, 4n, 3_000_000n, await sigFor(recordA, 3_000_000n)), 'AMOUNT_NOT_INCREASING', true);
    await expectWarning('equal amount, higher number', pay(idA, 4n, 6_000_000n, await sigFor(recordA, 6_000_000n)), 'AMOUNT_NOT_INCREASING', true);

    // Forged signatures over an otherwise acceptable next payment.
    const next = 7_000_000n;
    await expectWarning('random 64-byte signature', pay(idA, 4n, next, crypto.getRandomValues(new Uint8Array(64))), 'BAD_SIGNATURE', true);
    const stranger = SoftwareSigner.fromSeed(new Uint8Array(32).fill(0x77));
    await expectWarning('valid signature by a stranger key', pay(idA, 4n, next, await sigFor(recordA, next, stranger)), 'BAD_SIGNATURE', true);
    const payeeKeyIndex = A.payeeCh.snapshot().fundingKeyIndex;
    await expectWarning('valid signature by the payee\'s own funding key', pay(idA, 4n, next, await sigFor(recordA, next, provider.signer, payeeKeyIndex)), 'BAD_SIGNATURE', true);
    // (Another amount in the same satoshi would be the same transaction: msat below 1 sat never go on chain.)
    await expectWarning('payer signature for another amount', pay(idA, 4n, next + 1_000n, await sigFor(recordA, next)), 'BAD_SIGNATURE', true);

    // Re-targeted: a genuine signature for channel A presented as B's next payment (same two nodes).
    await expectWarning('A\'s payment sent as B\'s', pay(idB, 1n, next, await sigFor(recordA, next)), 'BAD_SIGNATURE', true);

    // Another peer's channel: a payment device 2 genuinely signed for C, sent by this device.
    const recordC = C.ch.snapshot();
    const foreign = pay(recordC.channelId!, 1n, 1_000_000n, await sigFor(recordC, 1_000_000n, device2.signer));
    await expectWarning('C\'s genuine payment sent by the wrong peer', foreign, 'UNKNOWN_CHANNEL', false);

    // Over capacity, by one msat and by a lot.
    const maxMsat = maxPaymentMsat(channelTerms(recordA));
    await expectWarning('one msat over what the channel can carry', pay(idA, 4n, maxMsat + 1n, crypto.getRandomValues(new Uint8Array(64))), 'CAPACITY_EXCEEDED', true);
    await expectWarning('far over capacity', pay(idA, 4n, CAPACITY_SAT * 1000n * 10n, crypto.getRandomValues(new Uint8Array(64))), 'CAPACITY_EXCEEDED', true);

    // The refused C payment was otherwise valid: sent by its owner it is accepted (the identical bytes).
    const receiptC = await C.ch.pay(1_000_000n);
    assert.deepEqual(encodeMessage(sentPays2.at(-1)!), encodeMessage(foreign), 'device 2 signed the very message that was refused from device 1');
    assert.equal(receiptC.paymentNumber, 1n);
    assert.equal(C.payeeCh.paidMsat, 1_000_000n);

    // Nothing shifted: the channels carry on with the next numbers.
    const receiptA = await A.ch.pay(1_000n);
    assert.deepEqual(receiptA, { paymentNumber: 4n, amountMsat: 6_001_000n });
    assert.equal(A.payeeCh.paidMsat, 6_001_000n);
    const receiptB = await B.ch.pay(5_000n);
    assert.deepEqual(receiptB, { paymentNumber: 1n, amountMsat: 5_000n });
    assert.equal(B.payeeCh.paidMsat, 5_000n);
    assert.deepEqual(counts, { PAYMENT_REPLAYED: 2, AMOUNT_NOT_INCREASING: 2, BAD_SIGNATURE: 5, UNKNOWN_CHANNEL: 1, CAPACITY_EXCEEDED: 2 });
  });

  test(`[§3.3] a tampered settlement over ${factory.name} fails the chain's script check; the payee's own is accepted`, { skip: factory.skip }, async (t) => {
    const w = await world(t, factory);
    const { chain, provider, device } = w;
    const { ch, payeeCh } = await openChannel(w, device, w.deviceChain);
    await ch.pay(4_000_000n);
    await ch.pay(3_333_333n);

    // The settlement exactly as the payee builds it: its stored payment, both signatures.
    const record = (await storedRecord(provider, payeeCh)).record as PayeeRecord;
    const tx = paymentTransaction(record, record.payment.amountMsat);
    const payeeSig = await signFundingSpend(provider.signer, record, tx);
    tx.setWitness(0, fundingWitness(
      record.payerFundingPubkey,
      scriptSignatureFromCompact(record.payment.signature!),
      record.payeeFundingPubkey!,
      scriptSignatureFromCompact(payeeSig),
    ));
    const valid = Uint8Array.from(tx.toBuffer());
    assert.equal(tx.outs.length, 2);
    assert.equal(tx.outs[0]!.value, 7_333n, 'payee first, floor(msat/1000)');

    const attacker = p2wpkhOutput(await stranger().getPublicKey({ family: 'wallet', index: 0 }));
    const tampers: Array<[string, (t: Transaction) => void]> = [
      ['payee output +1 sat (from the fee)', (t) => { t.outs[0]!.value += 1n; }],
      ['payee output -1 sat', (t) => { t.outs[0]!.value -= 1n; }],
      ['1 sat moved from payer change to payee', (t) => { t.outs[0]!.value += 1n; t.outs[1]!.value -= 1n; }],
      ['payee output script redirected', (t) => { t.outs[0]!.script = attacker; }],
      ['payer change script redirected', (t) => { t.outs[1]!.script = attacker; }],
      ['nLockTime changed', (t) => { t.locktime = 1; }],
    ];
    for (const [what, tamper] of tampers) {
      const copy = Transaction.fromBuffer(Buffer.from(valid));
      tamper(copy);
      const result = await chain.broadcast(copy.toBuffer());
      assert.equal(result.accepted, false, what);
      assert.ok(!result.accepted && result.code === 'mandatory-script-verify-flag-failed', `${what}: ${JSON.stringify(result)}`);
      assert.ok(!result.accepted && result.reason.startsWith('mandatory-script-verify-flag-failed ('), `${what}: ${!result.accepted && result.reason}`);
    }
    assert.deepEqual(chain.mempool(), [], 'no tampered version got in');

    // The payee settles on the close request: the very transaction built above, accepted.
    const closing = ch.close();
    await until(() => w.providerChain.broadcasts.length > 0, 'the payee settlement');
    const settlement = w.providerChain.broadcasts[0]!;
    assert.equal(settlement.result.accepted, true);
    assert.deepEqual(settlement.tx, valid, 'the payee broadcast the same bytes');
    const again = await chain.broadcast(valid);
    assert.equal(!again.accepted && again.code, 'txn-already-in-mempool');
    await chain.mine(1);
    const outcome = await closing;
    assert.equal(outcome?.kind, 'settled');
    assert.equal(outcome?.txid, tx.getId());
    assert.equal(outcome?.payeeValueSat, 7_333n);
    assert.equal((await payeeCh.waitForOutcome())?.txid, tx.getId());
  });

  test(`[§3.3] device connection cut twice over ${factory.name} (a payment sent into the outage; an ack lost): payments continue, none lost or double counted`, { skip: factory.skip }, async (t) => {
    let proxy: Awaited<ReturnType<typeof startTcpProxy>> | undefined;
    t.after(async () => proxy?.close());
    // Cut the device's link right after the provider stored payment `cutAfterStoring`, before its ack goes out.
    let cutAfterStoring = -1n;
    let cutDone = false;
    // Short timers so the provider declares its session stale while the device is away (maxRetransmits 3).
    const session = { reliability: { initialRtoMs: 100, maxRtoMs: 200, maxRetransmits: 3 }, handshakeTimeoutMs: 300, connectTimeoutMs: 10_000 };
    const w = await world(t, factory, {
      session,
      deviceUrl: async (broker) => {
        proxy = await startTcpProxy(broker.port);
        return proxy.url;
      },
      providerNode: {
        hooks: {
          afterPersist: async (reason, record) => {
            if (reason === 'payment-accepted' && record.payment.number === cutAfterStoring) {
              await proxy!.block();
              cutDone = true;
            }
          },
        },
      },
    });
    const { provider, device } = w;
    const deviceId: NodeId = device.messenger.nodeId;
    const payeeEvents: Array<{ number: bigint; amountMsat: bigint; incrementMsat: bigint }> = [];
    provider.node.onEvent((_c, e) => {
      if (e.type === 'payment') payeeEvents.push(e);
    });
    const replaced = { device: 0, provider: 0 };
    device.messenger.onSession((e) => { if (e.replaced) replaced.device++; });
    provider.messenger.onSession((e) => { if (e.replaced) replaced.provider++; });
    const resumes = { toDevice: 0, toProvider: 0 };
    device.messenger.onMessage((_p, m) => { if (m.type === 'oneway_resume') resumes.toDevice++; });
    provider.messenger.onMessage((_p, m) => { if (m.type === 'oneway_resume') resumes.toProvider++; });
    const { ch, payeeCh } = await openChannel(w, device, w.deviceChain);
    const offline = () => provider.messenger.statuses().get(deviceId)?.status === 'offline';
    const online = () => provider.messenger.statuses().get(deviceId)?.status === 'online';

    const increments: bigint[] = [];
    const receipts: Array<{ paymentNumber: bigint; amountMsat: bigint }> = [];
    const payOne = async (): Promise<void> => {
      const increment = 100_000n + BigInt(increments.length) * 1_111n;
      increments.push(increment);
      receipts.push(await ch.pay(increment));
    };
    for (let i = 0; i < 8; i++) await payOne();

    // Outage 1: the device's link is down when it pays; the payment waits for the link to return.
    await proxy!.block();
    await until(offline, 'the device offline (Will), outage 1');
    const storedAtCut = payeeCh.payments;
    const inFlight = payOne();
    await until(() => (ch.snapshot() as PayerRecord).payment.number === 9n, 'payment 9 signed and sent into the outage');
    assert.equal(payeeCh.payments, storedAtCut, 'nothing reached the provider while the link was down');
    await proxy!.reopen();
    await inFlight;
    for (let i = 0; i < 4; i++) await payOne();

    // Outage 2: the provider stores payment 14, then the link drops before its ack can reach the device.
    await until(online, 'the device online again');
    cutAfterStoring = 14n;
    const acked = payOne();
    await until(() => cutDone, 'the link cut between storing payment 14 and acknowledging it');
    assert.equal(payeeCh.payments, 14n, 'the provider holds payment 14');
    assert.equal(ch.paidMsat, receipts.at(-1)!.amountMsat, 'the device has no ack for it yet');
    const retransmitted = provider.messenger.stats().session.framesRetransmitted;
    await until(() => provider.messenger.stats().session.framesRetransmitted > retransmitted + 3, 'the provider retransmitting into the outage until its session is stale');
    await proxy!.reopen();
    await acked;
    for (let i = 0; i < 6; i++) await payOne();

    const n = increments.length;
    assert.equal(n, 20);
    const total = increments.reduce((a, b) => a + b, 0n);
    let running = 0n;
    receipts.forEach((r, i) => {
      running += increments[i]!;
      assert.deepEqual(r, { paymentNumber: BigInt(i + 1), amountMsat: running });
    });
    assert.deepEqual(payeeEvents.map((e) => e.number), Array.from({ length: n }, (_, i) => BigInt(i + 1)), 'each payment stored exactly once, in order');
    assert.equal(payeeEvents.reduce((a, e) => a + e.incrementMsat, 0n), total, 'increments add up: nothing counted twice');
    assert.equal(payeeCh.paidMsat, total);
    assert.equal(ch.paidMsat, total);
    assert.equal((ch.snapshot() as PayerRecord).failure, undefined, 'the device never failed the channel');
    const stored = (await storedRecord(provider, payeeCh)).record;
    assert.equal(stored.payment.number, BigInt(n));
    assert.equal(stored.payment.amountMsat, total);
    t.diagnostic(`${factory.name}: ${n} payments across two cuts; sessions replaced (device/provider): ${replaced.device}/${replaced.provider}; ` +
      `oneway_resume received (device/provider): ${resumes.toDevice}/${resumes.toProvider}`);
  });
}

function stranger(): SoftwareSigner {
  return SoftwareSigner.fromSeed(new Uint8Array(32).fill(0x66));
}
