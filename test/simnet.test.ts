/**
 * Simnet acceptance rules and chain behaviour, with real P2WPKH spends signed by SoftwareSigner and
 * verified by the independent interpreter (no mocks).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Block, Transaction } from 'bitcoinjs-lib';
import { Simnet, type BroadcastResult, type ChainEvent, type OutPoint } from '../src/chain/simnet/index.js';
import { hexToBytes, reverseBytes } from '../src/bytes.js';
import { p2wpkhOutput, compileScript, opcodes } from '../src/onchain/script.js';
import { P2wpkhKeys } from './helpers/p2wpkh.js';

const keys = await P2wpkhKeys.create(7);
const pubkeys = keys.pubkeys;
const pub0 = pubkeys[0]!;
const script0 = p2wpkhOutput(pub0);
const script1 = p2wpkhOutput(pubkeys[1]!);
/** A signed P2WPKH spend (test/helpers/p2wpkh.ts). */
const spend = keys.spend.bind(keys);
type SpendInput = Parameters<typeof spend>[0][number];

/** Spend one 100k-sat coin of key 0 to key 1, paying a 1000-sat fee. */
function simpleSpend(outpoint: OutPoint, extra: Partial<SpendInput> = {}, opts: { version?: number; locktime?: number } = {}) {
  return spend([{ outpoint, valueSat: 100_000n, ...extra }], [{ script: script1, valueSat: 99_000n }], opts);
}

function rejected(result: BroadcastResult): { code: string; reason: string } {
  assert.equal(result.accepted, false, 'expected a rejection');
  return result as { code: string; reason: string };
}

function accepted(result: BroadcastResult): string {
  assert.equal(result.accepted, true, result.accepted ? '' : `rejected: ${(result as { reason: string }).reason}`);
  return result.txid;
}

test('faucet creates a confirmed coin in a new block', async () => {
  const chain = new Simnet();
  assert.equal(await chain.tipHeight(), 0);
  const coin = await chain.faucetToPubkey(pub0, 100_000n);
  assert.equal(await chain.tipHeight(), 1);
  assert.deepEqual(await chain.getUtxo(coin), { output: { valueSat: 100_000n, script: script0 }, blockHeight: 1, confirmations: 1 });
  const status = await chain.getTransaction(coin.txid);
  assert.equal(status?.blockHeight, 1);
  assert.equal(Transaction.fromBuffer(status!.tx).getId(), coin.txid);
  assert.deepEqual(chain.getBlock(1)?.txids, [coin.txid]);
  assert.equal(chain.getBlock(1)?.prevHash, chain.getBlock(0)?.hash);
  assert.deepEqual(chain.utxosForScript(script0).map((u) => u.outpoint), [coin]);
  const second = await chain.faucetToPubkey(pub0, 100_000n);
  assert.notEqual(second.txid, coin.txid, 'faucet txids are unique');
  assert.equal((await chain.getUtxo(coin))?.confirmations, 2);
});

test('a valid spend enters the mempool, then mine() confirms it', async () => {
  const chain = new Simnet();
  const coin = await chain.faucetToPubkey(pub0, 100_000n);
  const raw = await simpleSpend(coin);
  const txid = accepted(await chain.broadcast(raw));
  assert.deepEqual(chain.mempool(), [txid]);
  assert.equal(await chain.getUtxo(coin), undefined, 'a mempool-spent coin is no longer a UTXO');
  assert.deepEqual(await chain.getSpend(coin), { txid, inputIndex: 0, blockHeight: undefined });
  assert.deepEqual(await chain.getUtxo({ txid, vout: 0 }), { output: { valueSat: 99_000n, script: script1 }, blockHeight: undefined, confirmations: 0 });
  assert.equal((await chain.getTransaction(txid))?.confirmations, 0);
  assert.equal(rejected(await chain.broadcast(raw)).code, 'txn-already-in-mempool');

  const [hash] = await chain.mine();
  assert.equal(chain.getBlock(2)?.hash, hash);
  assert.deepEqual(chain.mempool(), []);
  assert.deepEqual(await chain.getTransaction(txid), { tx: raw, blockHeight: 2, confirmations: 1 });
  assert.deepEqual(await chain.getSpend(coin), { txid, inputIndex: 0, blockHeight: 2 });
  assert.equal((await chain.getUtxo({ txid, vout: 0 }))?.blockHeight, 2);
  assert.deepEqual(rejected(await chain.broadcast(raw)), { accepted: false, txid, code: 'txn-already-known', reason: 'txn-already-known' });
});

test('missing, mempool-spent and chain-spent inputs', async () => {
  const chain = new Simnet();
  const coin = await chain.faucetToPubkey(pub0, 100_000n);
  const unknown = { txid: 'ab'.repeat(32), vout: 0 };
  assert.equal(rejected(await chain.broadcast(await simpleSpend(unknown))).reason, 'bad-txns-inputs-missingorspent');
  assert.equal(rejected(await chain.broadcast(await simpleSpend({ txid: coin.txid, vout: 1 }))).code, 'bad-txns-inputs-missingorspent');

  const first = accepted(await chain.broadcast(await simpleSpend(coin)));
  // Same coin, different tx (other fee): a conflict, and there is no RBF.
  const conflicting = await spend([{ outpoint: coin, valueSat: 100_000n }], [{ script: script1, valueSat: 98_000n }]);
  assert.deepEqual(rejected(await chain.broadcast(conflicting)), {
    accepted: false, txid: Transaction.fromBuffer(conflicting).getId(), code: 'txn-mempool-conflict', reason: 'txn-mempool-conflict',
  });
  assert.deepEqual(chain.mempool(), [first], 'a rejected tx changes nothing');

  await chain.mine();
  assert.equal(rejected(await chain.broadcast(conflicting)).reason, 'bad-txns-inputs-missingorspent');
});

test('bad signatures fail with Core\'s script error text', async () => {
  const chain = new Simnet();
  const coin = await chain.faucetToPubkey(pub0, 100_000n);
  const tip = await chain.tipHeight();
  // Signed by key 1 while the witness shows key 0 (which matches the output): a failing CHECKSIG.
  const wrongKey = rejected(await chain.broadcast(await simpleSpend(coin, { signWith: 1 })));
  assert.equal(wrongKey.code, 'mandatory-script-verify-flag-failed');
  assert.ok(wrongKey.reason.startsWith('mandatory-script-verify-flag-failed ('), wrongKey.reason);
  assert.equal(wrongKey.reason, 'mandatory-script-verify-flag-failed (Signature must be zero for failed CHECK(MULTI)SIG operation)');
  // Signed over the wrong amount (BIP 143 commits to it).
  const wrongValue = rejected(await chain.broadcast(await simpleSpend(coin, { valueSat: 100_001n })));
  assert.equal(wrongValue.code, 'mandatory-script-verify-flag-failed');
  // Key 1's coin with key 0's pubkey in the witness: Core runs P2WPKH as DUP HASH160 <program> EQUALVERIFY CHECKSIG.
  const coin1 = await chain.faucet(script1, 100_000n);
  const mismatch = rejected(await chain.broadcast(await simpleSpend(coin1, { signWith: 1 })));
  assert.equal(mismatch.reason, 'mandatory-script-verify-flag-failed (Script failed an OP_EQUALVERIFY operation)');
  assert.deepEqual(chain.mempool(), []);
  assert.equal(await chain.tipHeight(), tip + 1);
});

test('outputs above inputs, dust, and the minimum relay fee', async () => {
  const chain = new Simnet();
  const coin = await chain.faucetToPubkey(pub0, 100_000n);
  const over = await spend([{ outpoint: coin, valueSat: 100_000n }], [{ script: script1, valueSat: 100_001n }]);
  assert.deepEqual(rejected(await chain.broadcast(over)), {
    accepted: false, txid: Transaction.fromBuffer(over).getId(), code: 'bad-txns-in-belowout', reason: 'bad-txns-in-belowout',
  });
  const zeroFee = await spend([{ outpoint: coin, valueSat: 100_000n }], [{ script: script1, valueSat: 100_000n }]);
  assert.deepEqual(rejected(await chain.broadcast(zeroFee)), { accepted: false, txid: Transaction.fromBuffer(zeroFee).getId(), code: 'other', reason: 'min relay fee not met' });

  // P2WPKH dust threshold is 294 sat: 293 is dust, 294 is not; OP_RETURN outputs are exempt.
  const dust = await spend([{ outpoint: coin, valueSat: 100_000n }], [{ script: script1, valueSat: 98_000n }, { script: script0, valueSat: 293n }]);
  assert.deepEqual(rejected(await chain.broadcast(dust)), { accepted: false, txid: Transaction.fromBuffer(dust).getId(), code: 'dust', reason: 'dust' });
  const opReturn = compileScript([opcodes.OP_RETURN, new Uint8Array([1, 2, 3])]);
  const ok = await spend(
    [{ outpoint: coin, valueSat: 100_000n }],
    [{ script: script1, valueSat: 98_000n }, { script: script0, valueSat: 294n }, { script: opReturn, valueSat: 0n }],
  );
  const txid = accepted(await chain.broadcast(ok));
  assert.equal(await chain.getUtxo({ txid, vout: 2 }), undefined, 'OP_RETURN outputs are not UTXOs');
  assert.equal((await chain.getUtxo({ txid, vout: 1 }))?.output.valueSat, 294n);
});

test('structural rejections: garbage, empty outputs, duplicate inputs, coinbase-shaped', async () => {
  const chain = new Simnet();
  const coin = await chain.faucetToPubkey(pub0, 100_000n);
  const good = await simpleSpend(coin);
  const decodeFailed = { accepted: false, txid: '', code: 'tx-decode-failed', reason: 'TX decode failed' };
  assert.deepEqual(await chain.broadcast(new Uint8Array([1, 2, 3, 4, 5])), decodeFailed);
  assert.deepEqual(await chain.broadcast(new Uint8Array(0)), decodeFailed);
  assert.deepEqual(await chain.broadcast(good.subarray(0, good.length - 1)), decodeFailed);
  assert.deepEqual(await chain.broadcast(Uint8Array.from([...good, 0])), decodeFailed);
  assert.deepEqual(await chain.broadcast('00' as unknown as Uint8Array), decodeFailed);
  assert.deepEqual(chain.mempool(), []);
  assert.equal(await chain.tipHeight(), 1);

  const noOutputs = new Transaction();
  noOutputs.version = 2;
  noOutputs.addInput(reverseBytes(hexToBytes(coin.txid)), 0);
  assert.equal(rejected(await chain.broadcast(noOutputs.toBuffer())).code, 'bad-txns-vout-empty');

  const duplicate = await spend(
    [{ outpoint: coin, valueSat: 100_000n }, { outpoint: coin, valueSat: 100_000n }],
    [{ script: script1, valueSat: 99_000n }],
  );
  assert.equal(rejected(await chain.broadcast(duplicate)).code, 'bad-txns-inputs-duplicate');

  const coinbase = new Transaction();
  coinbase.addInput(new Uint8Array(32), 0xffffffff, 0xffffffff, new Uint8Array([1, 2]));
  coinbase.addOutput(script0, 1000n);
  assert.deepEqual(rejected(await chain.broadcast(coinbase.toBuffer())), { accepted: false, txid: coinbase.getId(), code: 'other', reason: 'coinbase' });
  assert.equal(rejected(await chain.broadcast(Transaction.fromBuffer((await chain.getTransaction(coin.txid))!.tx).toBuffer())).reason, 'coinbase');

  // Policy: a witness v0 program must be 20 or 32 bytes; a tx under 65 non-witness bytes is refused.
  const badProgram = Uint8Array.from([0x00, 21, ...new Uint8Array(21)]);
  const nonstandard = await spend([{ outpoint: coin, valueSat: 100_000n }], [{ script: badProgram, valueSat: 99_000n }]);
  assert.equal(rejected(await chain.broadcast(nonstandard)).reason, 'scriptpubkey');
  const tiny = await spend([{ outpoint: coin, valueSat: 100_000n }], [{ script: Uint8Array.from([opcodes.OP_RETURN]), valueSat: 0n }]);
  assert.deepEqual(rejected(await chain.broadcast(tiny)), { accepted: false, txid: Transaction.fromBuffer(tiny).getId(), code: 'other', reason: 'tx-size-small' });

  // The good tx is still acceptable after all that.
  accepted(await chain.broadcast(good));
});

test('nLockTime: height locks become final in block locktime+1; all-final sequences ignore it', async () => {
  const chain = new Simnet();
  const coin = await chain.faucetToPubkey(pub0, 100_000n);
  const tip = await chain.tipHeight();
  const lockAt = tip + 3;
  const locked = await simpleSpend(coin, { sequence: 0xfffffffe }, { locktime: lockAt });
  // Valid in a block at height > locktime, i.e. once tip >= locktime.
  while ((await chain.tipHeight()) < lockAt) {
    assert.deepEqual(rejected(await chain.broadcast(locked)), {
      accepted: false, txid: Transaction.fromBuffer(locked).getId(), code: 'non-final', reason: 'non-final',
    });
    await chain.mine();
  }
  accepted(await chain.broadcast(locked));

  // Far-future locktime, but every input's sequence is 0xffffffff: final regardless.
  const other = await chain.faucetToPubkey(pub0, 100_000n);
  accepted(await chain.broadcast(await simpleSpend(other, { sequence: 0xffffffff }, { locktime: 1_000_000 })));
});

test('nLockTime: time locks compare against median-time-past (BIP 113)', async () => {
  const chain = new Simnet();
  const coin = await chain.faucetToPubkey(pub0, 100_000n);
  await chain.mine(15);
  const mtp = chain.medianTimePast();
  assert.equal(mtp, chain.getBlock((await chain.tipHeight()) - 5)!.time, 'median of 11 evenly spaced blocks');
  const atMtp = await simpleSpend(coin, { sequence: 0xfffffffe }, { locktime: mtp });
  assert.equal(rejected(await chain.broadcast(atMtp)).code, 'non-final', 'locktime must be strictly below MTP');
  const belowMtp = await simpleSpend(coin, { sequence: 0xfffffffe }, { locktime: mtp - 1 });
  accepted(await chain.broadcast(belowMtp));
  await chain.mine();
  assert.ok(chain.medianTimePast() > mtp);
});

test('BIP 68 height locks: sequence N is valid in block h+N', async () => {
  const chain = new Simnet();
  const coin = await chain.faucetToPubkey(pub0, 100_000n);
  const h = (await chain.getUtxo(coin))!.blockHeight!;
  const N = 4;
  const locked = await simpleSpend(coin, { sequence: N });
  // The next block is tip+1, so the spend is accepted once tip >= h+N-1.
  while ((await chain.tipHeight()) < h + N - 1) {
    assert.deepEqual(rejected(await chain.broadcast(locked)), {
      accepted: false, txid: Transaction.fromBuffer(locked).getId(), code: 'non-BIP68-final', reason: 'non-BIP68-final',
    });
    await chain.mine();
  }
  assert.equal(await chain.tipHeight(), h + N - 1);
  accepted(await chain.broadcast(locked));
  await chain.mine();
  assert.equal((await chain.getTransaction(Transaction.fromBuffer(locked).getId()))?.blockHeight, h + N);
});

test('BIP 68 is ignored for version 1 and with the disable flag', async () => {
  const chain = new Simnet();
  const a = await chain.faucetToPubkey(pub0, 100_000n);
  const b = await chain.faucetToPubkey(pub0, 100_000n);
  const c = await chain.faucetToPubkey(pub0, 100_000n);
  assert.equal(rejected(await chain.broadcast(await simpleSpend(a, { sequence: 100 }))).code, 'non-BIP68-final');
  accepted(await chain.broadcast(await simpleSpend(a, { sequence: 100 }, { version: 1 })));
  accepted(await chain.broadcast(await simpleSpend(b, { sequence: (0x80000000 | 100) >>> 0 })));
  // Standardness: versions other than 1 and 2 are refused.
  assert.deepEqual(rejected(await chain.broadcast(await simpleSpend(c, {}, { version: 3 }))), {
    accepted: false, txid: Transaction.fromBuffer(await simpleSpend(c, {}, { version: 3 })).getId(), code: 'other', reason: 'version',
  });
});

test('BIP 68 time locks: 512-second units from the MTP before the coin\'s block', async () => {
  const chain = new Simnet();
  await chain.mine(20); // past 11 blocks, MTP(h) = time(h-5) and grows 600 s per block
  const coin = await chain.faucetToPubkey(pub0, 100_000n);
  const TYPE = 1 << 22;
  // 2 units = 1024 s: needs MTP(tip) > MTP(h-1) + 1023, true from tip = h+1.
  const locked = await simpleSpend(coin, { sequence: TYPE | 2 });
  assert.equal(rejected(await chain.broadcast(locked)).code, 'non-BIP68-final');
  await chain.mine();
  accepted(await chain.broadcast(locked));

  // Exact boundary: 75 units = 38400 s = 64 blocks of 600 s. Core requires MTP(tip) >= MTP(h-1) + 38400.
  const coin2 = await chain.faucetToPubkey(pub0, 100_000n);
  const h2 = (await chain.getUtxo(coin2))!.blockHeight!;
  const exact = await simpleSpend(coin2, { sequence: TYPE | 75 });
  await chain.mine(h2 + 62 - (await chain.tipHeight()));
  assert.equal(chain.medianTimePast(), chain.medianTimePast(h2 - 1) + 38400 - 600);
  assert.equal(rejected(await chain.broadcast(exact)).code, 'non-BIP68-final');
  await chain.mine();
  assert.equal(chain.medianTimePast(), chain.medianTimePast(h2 - 1) + 38400);
  accepted(await chain.broadcast(exact));
});

test('chained unconfirmed spends: child of a mempool parent, both confirmed in one block', async () => {
  const chain = new Simnet();
  const coin = await chain.faucetToPubkey(pub0, 100_000n);
  const parent = accepted(await chain.broadcast(await spend([{ outpoint: coin, valueSat: 100_000n }], [{ script: script0, valueSat: 99_000n }])));
  const parentOut = { txid: parent, vout: 0 };
  // A relative lock on an unconfirmed parent counts it as confirming in the next block.
  const heightLocked = await spend([{ outpoint: parentOut, valueSat: 99_000n, sequence: 1 }], [{ script: script1, valueSat: 98_000n }]);
  assert.equal(rejected(await chain.broadcast(heightLocked)).code, 'non-BIP68-final');
  const timeLocked = await spend([{ outpoint: parentOut, valueSat: 99_000n, sequence: (1 << 22) | 1 }], [{ script: script1, valueSat: 98_000n }]);
  assert.equal(rejected(await chain.broadcast(timeLocked)).code, 'non-BIP68-final');
  const child = accepted(await chain.broadcast(await spend([{ outpoint: parentOut, valueSat: 99_000n, sequence: 0 }], [{ script: script1, valueSat: 98_000n }])));
  assert.deepEqual(chain.mempool(), [parent, child]);
  assert.deepEqual(chain.utxosForScript(script1).map((u) => [u.outpoint.txid, u.confirmations]), [[child, 0]]);

  await chain.mine();
  assert.deepEqual(chain.getBlock(2)?.txids, [parent, child]);
  assert.equal((await chain.getTransaction(child))?.blockHeight, 2);
  assert.deepEqual(await chain.getSpend(parentOut), { txid: child, inputIndex: 0, blockHeight: 2 });
  assert.deepEqual(chain.mempool(), []);
});

test('events: spent in the mempool, spent when confirmed, and blocks', async () => {
  const chain = new Simnet();
  const events: ChainEvent[] = [];
  const unsubscribe = chain.subscribe((e) => events.push(e));
  const coin = await chain.faucetToPubkey(pub0, 100_000n);
  const unwatched = await chain.faucetToPubkey(pub0, 100_000n);
  assert.deepEqual(events, [
    { type: 'block', height: 1, hash: chain.getBlock(1)!.hash },
    { type: 'block', height: 2, hash: chain.getBlock(2)!.hash },
  ]);
  events.length = 0;
  chain.watchOutpoint(coin);
  const txid = accepted(await chain.broadcast(await simpleSpend(coin)));
  accepted(await chain.broadcast(await simpleSpend(unwatched)));
  assert.deepEqual(events, [{ type: 'spent', outpoint: coin, spend: { txid, inputIndex: 0, blockHeight: undefined } }]);
  const hashes = await chain.mine(3);
  assert.deepEqual(events.slice(1), [
    { type: 'spent', outpoint: coin, spend: { txid, inputIndex: 0, blockHeight: 3 } },
    { type: 'block', height: 3, hash: hashes[0] },
    { type: 'block', height: 4, hash: hashes[1] },
    { type: 'block', height: 5, hash: hashes[2] },
  ]);
  unsubscribe();
  await chain.mine();
  assert.equal(events.length, 5, 'no events after unsubscribe');
});

test('a throwing listener does not break the chain', async () => {
  const chain = new Simnet();
  const seen: string[] = [];
  chain.subscribe(() => {
    throw new Error('listener bug');
  });
  chain.subscribe((e) => seen.push(e.type));
  const coin = await chain.faucetToPubkey(pub0, 100_000n);
  chain.watchOutpoint(coin);
  accepted(await chain.broadcast(await simpleSpend(coin)));
  await chain.mine();
  assert.deepEqual(seen, ['block', 'spent', 'spent', 'block']);
  assert.equal(chain.listenerErrors().length, 4);
  assert.deepEqual(chain.mempool(), []);
});

test('a listener may broadcast re-entrantly; events stay in chain order', async () => {
  const chain = new Simnet();
  const coin = await chain.faucetToPubkey(pub0, 100_000n);
  const next = await chain.faucetToPubkey(pub0, 100_000n);
  const pending = await simpleSpend(next);
  const log: string[] = [];
  chain.watchOutpoint(coin);
  chain.watchOutpoint(next);
  chain.subscribe((e) => {
    if (e.type === 'reorg') throw new Error('no reorg here');
    log.push(e.type === 'block' ? `block ${e.height}` : `spent ${e.outpoint.txid === coin.txid ? 'coin' : 'next'} ${e.spend.blockHeight}`);
    // React to the first confirmation by broadcasting another tx (as a channel would).
    if (e.type === 'spent' && e.spend.blockHeight !== undefined && e.outpoint.txid === coin.txid) void chain.broadcast(pending);
  });
  accepted(await chain.broadcast(await simpleSpend(coin)));
  await chain.mine(2);
  assert.deepEqual(log, ['spent coin undefined', 'spent coin 3', 'block 3', 'spent next undefined', 'spent next 4', 'block 4']);
});

test('deterministic: the same actions give the same block hashes', async () => {
  const run = async () => {
    const chain = new Simnet();
    const coin = await chain.faucetToPubkey(pub0, 100_000n);
    accepted(await chain.broadcast(await simpleSpend(coin)));
    return [...(await chain.mine(2)), chain.getBlock(1)!.hash];
  };
  assert.deepEqual(await run(), await run());
  const custom = new Simnet({ startTime: 1_600_000_000, feeratePerKw: 253n });
  assert.equal(custom.getBlock(0)?.time, 1_600_000_000);
  assert.equal(await custom.estimateFeeratePerKw(6), 253n);
  assert.equal(await new Simnet().estimateFeeratePerKw(1), 2500n);
  const noMinFee = new Simnet({ minRelayFeeSatPerKvB: 0n });
  const coin = await noMinFee.faucetToPubkey(pub0, 100_000n);
  accepted(await noMinFee.broadcast(await spend([{ outpoint: coin, valueSat: 100_000n }], [{ script: script1, valueSat: 100_000n }])));
});

test('blocks are real serialisations: header hash, merkle root, witness commitment, coinbase first', async () => {
  const chain = new Simnet();
  const coin = await chain.faucetToPubkey(pub0, 100_000n);
  const txid = accepted(await chain.broadcast(await simpleSpend(coin)));
  const [hash] = await chain.mine(1);
  const raw = chain.rawBlock(hash!)!;
  assert.deepEqual(chain.rawBlock(2), raw);
  const block = Block.fromBuffer(raw);
  assert.equal(block.getId(), hash);
  assert.ok(block.checkTxRoots(), 'merkle root and witness commitment');
  assert.equal(block.transactions![0]!.getId(), chain.getBlock(2)!.coinbaseTxid);
  assert.ok(block.transactions![0]!.isCoinbase());
  assert.deepEqual(block.transactions!.slice(1).map((t) => t.getId()), [txid]);
  assert.equal(chain.getBlockByHash(hash!)?.height, 2);
  assert.equal(Block.fromBuffer(chain.rawBlock(0)!).getId(), chain.getBlock(0)!.hash);
  assert.equal(chain.rawBlock('00'.repeat(32)), undefined);
});

test('mined coinbases pay the regtest subsidy and need 100 confirmations (faucet coins do not)', async () => {
  const chain = new Simnet();
  await chain.mine(1, { coinbaseScript: script0 });
  const cb = chain.getBlock(1)!.coinbaseTxid;
  assert.ok(chain.isMinedCoinbase(cb));
  const [utxo] = chain.utxosForScript(script0);
  assert.deepEqual(utxo, { outpoint: { txid: cb, vout: 0 }, output: { valueSat: 5_000_000_000n, script: script0 }, blockHeight: 1, confirmations: 1, coinbase: true });
  const spendCoinbase = () => spend([{ outpoint: { txid: cb, vout: 0 }, valueSat: 5_000_000_000n }], [{ script: script1, valueSat: 4_999_990_000n }]);
  await chain.mine(98);
  const premature = rejected(await chain.broadcast(await spendCoinbase()));
  assert.deepEqual([premature.code, premature.reason], ['other', 'bad-txns-premature-spend-of-coinbase']);
  await chain.mine(1); // the spend would confirm at height 101: 100 blocks after the coinbase's
  accepted(await chain.broadcast(await spendCoinbase()));
  const faucet = await chain.faucetToPubkey(pub0, 100_000n);
  assert.equal(chain.isMinedCoinbase(faucet.txid), false);
  accepted(await chain.broadcast(await simpleSpend(faucet)));
  // Halving every 150 blocks on regtest.
  await chain.mine(150 - (await chain.tipHeight()) + 1, { coinbaseScript: script1 });
  assert.equal((await chain.getUtxo({ txid: chain.getBlock(150)!.coinbaseTxid, vout: 0 }))?.output.valueSat, 2_500_000_000n);
});

test('invalidateBlock undoes blocks (coins created and spent inside them too) and returns their transactions to the mempool', async () => {
  const chain = new Simnet();
  const coin = await chain.faucetToPubkey(pub0, 100_000n);
  const parent = await spend([{ outpoint: coin, valueSat: 100_000n }], [{ script: script0, valueSat: 99_000n }]);
  const parentId = accepted(await chain.broadcast(parent));
  const child = await spend([{ outpoint: { txid: parentId, vout: 0 }, valueSat: 99_000n }], [{ script: script1, valueSat: 98_000n }]);
  const childId = accepted(await chain.broadcast(child));
  const [h2, h3] = await chain.mine(2);
  const events: ChainEvent[] = [];
  chain.watchOutpoint(coin);
  chain.subscribe((e) => events.push(e));
  chain.invalidateBlock(h2!);
  assert.equal(await chain.tipHeight(), 1);
  assert.deepEqual(events, [
    { type: 'reorg', forkHeight: 1, disconnected: [{ height: 3, hash: h3 }, { height: 2, hash: h2 }] },
    { type: 'spent', outpoint: coin, spend: { txid: parentId, inputIndex: 0, blockHeight: undefined } },
  ]);
  assert.deepEqual(chain.mempool(), [parentId, childId]);
  assert.deepEqual(await chain.getTransaction(parentId), { tx: parent, blockHeight: undefined, confirmations: 0 });
  assert.equal(chain.getBlockByHash(h2!), undefined);
  // Evicting the parent takes its child with it; the coin is unspent again.
  assert.deepEqual(chain.evict(parentId), [parentId, childId]);
  assert.deepEqual(chain.mempool(), []);
  assert.equal((await chain.getUtxo(coin))?.confirmations, 1);
  assert.equal(await chain.getSpend(coin), undefined);
  assert.deepEqual(chain.evict(parentId), []);
  // The new chain has new hashes at the same heights.
  const [n2] = await chain.mine(1);
  assert.notEqual(n2, h2);
  accepted(await chain.broadcast(parent));
  await chain.mine(1);
  assert.deepEqual(await chain.getSpend(coin), { txid: parentId, inputIndex: 0, blockHeight: 3 });
  assert.throws(() => chain.invalidateBlock(chain.getBlock(0)!.hash), RangeError);
  assert.throws(() => chain.invalidateBlock('11'.repeat(32)), RangeError);
});

test('after invalidateBlock, a transaction that is no longer final is dropped, as Core drops it', async () => {
  const chain = new Simnet();
  const coin = await chain.faucetToPubkey(pub0, 100_000n);
  await chain.mine(4);
  const tip = await chain.tipHeight();
  const timelocked = await spend([{ outpoint: coin, valueSat: 100_000n, sequence: 0xfffffffe }], [{ script: script1, valueSat: 99_000n }], { locktime: tip });
  const id = accepted(await chain.broadcast(timelocked));
  await chain.mine(1);
  chain.invalidateBlock(chain.getBlock(tip - 1)!.hash);
  assert.equal(await chain.getTransaction(id), undefined);
  assert.deepEqual(chain.mempool(), []);
});
