/**
 * The device wallet: fee-aware coin selection checked against the real funding builder and the simnet's
 * mempool rules, spendability (confirmations, coinbase maturity, locks), fee clamping, durable locks;
 * the UTXO sources (simnet, Esplora) and the block scanner (progress, resume, reorgs, corrupt state).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Block, Transaction } from 'bitcoinjs-lib';
import { Simnet } from '../src/chain/simnet/simnet.js';
import { ChainClientError } from '../src/chain/errors.js';
import type { OutPoint, TxStatus } from '../src/chain/port.js';
import { SoftwareSigner } from '../src/signer/software.js';
import { MemoryStore } from '../src/store/memory.js';
import { bytesToHex } from '../src/bytes.js';
import { sha256 } from '../src/crypto/hash.js';
import { compileScript, p2wpkhOutput, scriptNumber } from '../src/onchain/script.js';
import { txidToHash } from '../src/onchain/tx.js';
import { buildFundingTransaction, signFundingInputs } from '../src/onchain/funding.js';
import {
  BlockScanUtxoSource,
  DeviceWallet,
  EsploraUtxoSource,
  SimnetUtxoSource,
  WalletError,
  deviceWalletScripts,
  fundingFeeSat,
  type BlockSource,
  type DeviceWalletOptions,
  type FundingWallet,
  type ScannedBlock,
  type UtxoSource,
  type WalletUtxo,
} from '../src/wallet/index.js';
import { satPerVbFromPerKw } from '../src/onchain/funding.js';

const signer = SoftwareSigner.fromSeed(new Uint8Array(32).fill(7));
const peer = SoftwareSigner.fromSeed(new Uint8Array(32).fill(8));
const fundingPubkeys: [Uint8Array, Uint8Array] = [
  await signer.getPublicKey({ family: 'funding', index: 0 }),
  await peer.getPublicKey({ family: 'funding', index: 0 }),
];
const { receive: RECEIVE, change: CHANGE } = await deviceWalletScripts(signer);
const STRANGER = p2wpkhOutput(await peer.getPublicKey({ family: 'wallet', index: 0 }));

function openWallet(chain: Simnet, options: Partial<DeviceWalletOptions> = {}): Promise<DeviceWallet> {
  return DeviceWallet.open({ signer, source: new SimnetUtxoSource(chain), chain, ...options });
}

/** A UtxoSource that answers with a fixed list (for spendability cases the simnet cannot produce). */
function fixedSource(utxos: WalletUtxo[]): UtxoSource {
  return { listUnspent: async () => utxos.map((u) => ({ ...u })) };
}

function outpoint(label: string | number, vout = 0): OutPoint {
  return { txid: bytesToHex(sha256(new TextEncoder().encode(`wallet-test/${label}`))), vout };
}

function utxo(label: string | number, valueSat: bigint, extra: Partial<WalletUtxo> = {}): WalletUtxo {
  return { outpoint: outpoint(label), valueSat, script: RECEIVE, blockHeight: 100, confirmations: 6, coinbase: false, ...extra };
}

const fixedChain = (feeratePerKw = 2500n, tip = 1000): DeviceWalletOptions['chain'] => ({
  estimateFeeratePerKw: async () => feeratePerKw,
  tipHeight: async () => tip,
});

function values(coins: Array<{ valueSat: bigint }>): bigint[] {
  return coins.map((c) => c.valueSat);
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<unknown> {
  let caught: unknown;
  await assert.rejects(promise, (error: unknown) => {
    caught = error;
    return (error as { code?: string }).code === code;
  });
  return caught;
}

// ---- keys and the port -----------------------------------------------------------------------------

test('wallet keys: receive is P2WPKH of wallet/0, change of wallet/1; payouts go to receive', async () => {
  const wallet = await openWallet(new Simnet());
  assert.deepEqual(wallet.receiveScript(), p2wpkhOutput(await signer.getPublicKey({ family: 'wallet', index: 0 })));
  assert.deepEqual(wallet.changeScript(), p2wpkhOutput(await signer.getPublicKey({ family: 'wallet', index: 1 })));
  assert.deepEqual(wallet.scripts(), [RECEIVE, CHANGE]);
  assert.deepEqual(await wallet.payoutScript(), RECEIVE);
  // It fits the port the channel runtime uses.
  const port: FundingWallet = wallet;
  assert.equal(typeof port.fundingFeeratePerKw, 'function');
});

// ---- selection -------------------------------------------------------------------------------------

test('selection: the single smallest coin that covers amount + fee', async () => {
  const chain = new Simnet();
  for (const v of [50_000n, 300_000n, 120_000n, 101_000n]) await chain.faucet(RECEIVE, v);
  const wallet = await openWallet(chain);
  // 101_000 does not cover 100_000 + fee at 10 sat/vB (one input: 487 WU = 122 vB, 1_220 sat); 120_000 does.
  assert.equal(fundingFeeSat(1, 2500n), 122n * 10n);
  const { coins, changeScript } = await wallet.selectCoins(100_000n, 2500n);
  assert.deepEqual(values(coins), [120_000n]);
  assert.deepEqual(changeScript, CHANGE);
  assert.deepEqual(coins[0]!.key, { family: 'wallet', index: 0 });
  assert.deepEqual(coins[0]!.pubkey, await signer.getPublicKey({ family: 'wallet', index: 0 }));
});

test('selection: largest first when no single coin covers it', async () => {
  const chain = new Simnet();
  for (const v of [40_000n, 70_000n, 10_000n, 60_000n]) await chain.faucet(RECEIVE, v);
  const wallet = await openWallet(chain);
  const { coins } = await wallet.selectCoins(120_000n, 2500n);
  assert.deepEqual(values(coins), [70_000n, 60_000n]);
  // The next open cannot reuse them: 40k + 10k is all that is left, 48_100 after the fee for two inputs.
  await wallet.selectCoins(48_100n, 2500n).then((r) => wallet.release(r.coins.map((c) => c.outpoint)));
  await rejectsWith(wallet.selectCoins(48_101n, 2500n), 'INSUFFICIENT_FUNDS');
  assert.deepEqual(values((await wallet.selectCoins(20_000n, 2500n)).coins), [40_000n]);
});

test('selection pays exactly the fee buildFundingTransaction charges, at the rate asked, and the simnet accepts it', async () => {
  for (const feeratePerKw of [253n, 2500n, 7777n, 25_000n]) {
    for (const coinValues of [[200_000n], [90_000n, 80_000n, 70_000n]]) {
      const chain = new Simnet({ feeratePerKw });
      for (const v of coinValues) await chain.faucet(RECEIVE, v);
      const wallet = await openWallet(chain);
      const amountSat = 150_000n;
      const { coins, changeScript } = await wallet.selectCoins(amountSat, feeratePerKw);
      const satPerVb = satPerVbFromPerKw(feeratePerKw);
      const funding = buildFundingTransaction({ fundingPubkeys, contributions: [{ coins, amountSat, changeScript }], feerateSatPerVb: satPerVb });
      const fee = funding.feeSat[0]!;
      const inSat = coins.reduce((t, c) => t + c.valueSat, 0n);
      // Selection reserved the builder's fee without change: 42 WU common, 172 the P2WSH output, 273 per input.
      const weight = 42 + 172 + 273 * coins.length;
      assert.equal(fundingFeeSat(coins.length, feeratePerKw), BigInt(Math.ceil(weight / 4)) * satPerVb);
      assert.ok(inSat >= amountSat + fundingFeeSat(coins.length, feeratePerKw));
      if (funding.changeSat[0]! > 0n) {
        // With change the builder adds the change output (31 bytes) at the same rate.
        assert.equal(fee, BigInt(Math.ceil((weight + 31 * 4) / 4)) * satPerVb);
        assert.equal(inSat, amountSat + fee + funding.changeSat[0]!);
      } else {
        // Change below dust goes to the fee.
        assert.equal(fee, inSat - amountSat);
      }
      await signFundingInputs(funding, 0, signer);
      // Signed signatures are at most 72 bytes, so the real rate is at least the one asked.
      assert.ok(fee >= BigInt(funding.tx.virtualSize()) * satPerVb, `${fee} for ${funding.tx.virtualSize()} vB at ${satPerVb}`);
      // … and, when there is change, no more than the signatures' worst-case byte (plus rounding) above it.
      if (funding.changeSat[0]! > 0n) assert.ok(fee <= BigInt(funding.tx.virtualSize() + coins.length + 1) * satPerVb);
      const result = await chain.broadcast(funding.tx.toBuffer());
      assert.equal(result.accepted, true, JSON.stringify(result));
    }
  }
});

test('selection boundary: a coin of exactly amount + fee is enough, one sat less is not', async () => {
  for (const feeratePerKw of [253n, 2500n, 9999n]) {
    const amountSat = 50_000n;
    const exact = amountSat + fundingFeeSat(1, feeratePerKw);
    const chain = new Simnet({ feeratePerKw });
    await chain.faucet(RECEIVE, exact - 1n);
    const wallet = await openWallet(chain);
    const error = (await rejectsWith(wallet.selectCoins(amountSat, feeratePerKw), 'INSUFFICIENT_FUNDS')) as WalletError;
    assert.equal(error.funds?.neededSat, exact);
    // The builder agrees that one sat less is short.
    const short = { outpoint: outpoint('short'), valueSat: exact - 1n, pubkey: await signer.getPublicKey({ family: 'wallet', index: 0 }), key: { family: 'wallet' as const, index: 0 } };
    assert.throws(() => buildFundingTransaction({ fundingPubkeys, contributions: [{ coins: [short], amountSat, changeScript: CHANGE }], feerateSatPerVb: satPerVbFromPerKw(feeratePerKw) }), { code: 'INSUFFICIENT_FUNDS' });

    await chain.faucet(RECEIVE, exact);
    const { coins, changeScript } = await wallet.selectCoins(amountSat, feeratePerKw);
    assert.deepEqual(values(coins), [exact]);
    const funding = buildFundingTransaction({ fundingPubkeys, contributions: [{ coins, amountSat, changeScript }], feerateSatPerVb: satPerVbFromPerKw(feeratePerKw) });
    assert.equal(funding.feeSat[0], fundingFeeSat(1, feeratePerKw));
    assert.equal(funding.changeSat[0], 0n);
    await signFundingInputs(funding, 0, signer);
    assert.equal((await chain.broadcast(funding.tx.toBuffer())).accepted, true);
  }
});

test('insufficient funds reports spendable, needed, unconfirmed, immature and locked figures', async () => {
  const wallet = await DeviceWallet.open({
    signer,
    chain: fixedChain(),
    source: fixedSource([
      utxo('ok', 10_000n),
      utxo('mempool', 20_000n, { blockHeight: undefined, confirmations: 0 }),
      utxo('young-coinbase', 30_000n, { coinbase: true, confirmations: 50 }),
      utxo('locked', 40_000n),
      utxo('not-ours', 1_000_000n, { script: STRANGER }),
    ]),
  });
  await wallet.reserve([outpoint('locked')]);
  const error = (await rejectsWith(wallet.selectCoins(50_000n, 2500n), 'INSUFFICIENT_FUNDS')) as WalletError;
  assert.ok(error instanceof WalletError);
  assert.deepEqual(error.funds, {
    spendableSat: 10_000n,
    neededSat: 50_000n + fundingFeeSat(1, 2500n),
    unconfirmedSat: 20_000n,
    immatureSat: 30_000n,
    lockedSat: 40_000n,
  });
  assert.match(error.message, /10000 sat spendable/);
  assert.deepEqual(await wallet.balance(), { spendableSat: 10_000n, unconfirmedSat: 20_000n, immatureSat: 30_000n, lockedSat: 40_000n });
});

test('min confirmations: unconfirmed change is not spent until it confirms (or minConfirmations is 0)', async () => {
  const chain = new Simnet();
  await chain.faucet(RECEIVE, 500_000n);
  const wallet = await openWallet(chain);
  const { coins, changeScript } = await wallet.selectCoins(100_000n, 2500n);
  const funding = buildFundingTransaction({ fundingPubkeys, contributions: [{ coins, amountSat: 100_000n, changeScript }], feerateSatPerVb: 10n });
  await signFundingInputs(funding, 0, signer);
  assert.equal((await chain.broadcast(funding.tx.toBuffer())).accepted, true);
  const changeSat = funding.changeSat[0]!;

  let balance = await wallet.balance();
  assert.deepEqual(balance, { spendableSat: 0n, unconfirmedSat: changeSat, immatureSat: 0n, lockedSat: 0n });
  const error = (await rejectsWith(wallet.selectCoins(10_000n, 2500n), 'INSUFFICIENT_FUNDS')) as WalletError;
  assert.equal(error.funds?.unconfirmedSat, changeSat);

  const eager = await openWallet(chain, { minConfirmations: 0 });
  const spent = await eager.selectCoins(10_000n, 2500n);
  assert.deepEqual(spent.coins[0]!.key, { family: 'wallet', index: 1 }, 'change is signed with wallet/1');

  const strict = await openWallet(chain, { minConfirmations: 3 });
  await chain.mine(2);
  assert.equal((await strict.balance()).unconfirmedSat, changeSat);
  await chain.mine(1);
  assert.equal((await strict.balance()).spendableSat, changeSat);
  const second = await strict.selectCoins(10_000n, 2500n);
  assert.deepEqual(values(second.coins), [changeSat]);
  // Change is signed with wallet/1, and the simnet verifies it.
  const next = buildFundingTransaction({ fundingPubkeys, contributions: [{ coins: second.coins, amountSat: 10_000n, changeScript: second.changeScript }], feerateSatPerVb: 10n });
  await signFundingInputs(next, 0, signer);
  assert.equal((await chain.broadcast(next.tx.toBuffer())).accepted, true);
});

test('coinbase maturity: a coinbase output is spendable from 100 confirmations', async () => {
  for (const [confirmations, spendable] of [[1, false], [99, false], [100, true], [150, true]] as const) {
    const wallet = await DeviceWallet.open({
      signer,
      chain: fixedChain(),
      source: fixedSource([utxo('coinbase', 1_000_000n, { coinbase: true, confirmations })]),
    });
    const balance = await wallet.balance();
    assert.equal(balance.spendableSat, spendable ? 1_000_000n : 0n, `${confirmations}`);
    assert.equal(balance.immatureSat, spendable ? 0n : 1_000_000n);
    if (spendable) assert.equal((await wallet.selectCoins(10_000n)).coins.length, 1);
    else assert.equal(((await rejectsWith(wallet.selectCoins(10_000n), 'INSUFFICIENT_FUNDS')) as WalletError).funds?.immatureSat, 1_000_000n);
  }
});

test('two opens at once never get the same coin', async () => {
  const chain = new Simnet();
  await chain.faucet(RECEIVE, 100_000n);
  await chain.faucet(RECEIVE, 100_000n);
  const wallet = await openWallet(chain, { store: new MemoryStore() });
  const [a, b] = await Promise.all([wallet.selectCoins(50_000n, 2500n), wallet.selectCoins(50_000n, 2500n)]);
  assert.notDeepEqual(a.coins[0]!.outpoint, b.coins[0]!.outpoint);
  await rejectsWith(wallet.selectCoins(50_000n, 2500n), 'INSUFFICIENT_FUNDS');
});

test('property: selection covers amount + fee exactly when some set of coins can, and never takes an unspendable coin', async () => {
  const coinArb = fc.record({
    valueSat: fc.bigInt({ min: 1n, max: 2_000_000n }),
    confirmations: fc.integer({ min: 0, max: 200 }),
    coinbase: fc.boolean(),
    locked: fc.boolean(),
    change: fc.boolean(),
  });
  await fc.assert(
    fc.asyncProperty(
      fc.array(coinArb, { maxLength: 8 }),
      fc.bigInt({ min: 1_000n, max: 3_000_000n }),
      fc.bigInt({ min: 253n, max: 50_000n }),
      async (specs, amountSat, feeratePerKw) => {
        const utxos = specs.map((s, i) =>
          utxo(`p${i}`, s.valueSat, { confirmations: s.confirmations, blockHeight: s.confirmations ? 100 : undefined, coinbase: s.coinbase, script: s.change ? CHANGE : RECEIVE }),
        );
        const wallet = await DeviceWallet.open({ signer, chain: fixedChain(), source: fixedSource(utxos) });
        await wallet.reserve(utxos.filter((_, i) => specs[i]!.locked).map((u) => u.outpoint));
        const usable = utxos.filter((u, i) => !specs[i]!.locked && u.confirmations >= 1 && !(u.coinbase && u.confirmations < 100));
        // Brute force: does any subset cover amount + the builder's fee for that many inputs?
        let possible = false;
        for (let mask = 1; mask < 1 << usable.length && !possible; mask++) {
          const subset = usable.filter((_, i) => mask & (1 << i));
          const total = subset.reduce((s, u) => s + u.valueSat, 0n);
          possible = total >= amountSat + fundingFeeSat(subset.length, feeratePerKw);
        }
        let result;
        try {
          result = await wallet.selectCoins(amountSat, feeratePerKw);
        } catch (error) {
          assert.equal((error as WalletError).code, 'INSUFFICIENT_FUNDS');
          assert.equal(possible, false, 'a covering set existed');
          return;
        }
        assert.equal(possible, true);
        const usableIds = new Set(usable.map((u) => `${u.outpoint.txid}:${u.outpoint.vout}`));
        for (const c of result.coins) assert.ok(usableIds.has(`${c.outpoint.txid}:${c.outpoint.vout}`), 'took an unspendable coin');
        const total = result.coins.reduce((s, c) => s + c.valueSat, 0n);
        assert.ok(total >= amountSat + fundingFeeSat(result.coins.length, feeratePerKw));
        // The builder accepts it at the same rate.
        const funding = buildFundingTransaction({
          fundingPubkeys,
          contributions: [{ coins: result.coins, amountSat, changeScript: result.changeScript }],
          feerateSatPerVb: satPerVbFromPerKw(feeratePerKw),
        });
        assert.equal(funding.fundingValueSat, amountSat);
      },
    ),
    { numRuns: 300 },
  );
});

// ---- fee rate --------------------------------------------------------------------------------------

test('funding fee rate: the estimate clamped to [floor, ceiling]; selectCoins uses it when no rate is given', async () => {
  const chain = new Simnet();
  await chain.faucet(RECEIVE, 100_000n);
  const wallet = await openWallet(chain, { feeCeilingPerKw: 20_000n });
  chain.setFeeratePerKw(100n);
  assert.equal(await wallet.fundingFeeratePerKw(), 253n);
  chain.setFeeratePerKw(3000n);
  assert.equal(await wallet.fundingFeeratePerKw(), 3000n);
  chain.setFeeratePerKw(90_000n);
  assert.equal(await wallet.fundingFeeratePerKw(), 20_000n);
  // At the ceiling (80 sat/vB) 90_000 + fee for one input fits in 100_000; at 90_000 sat/kW it would not.
  assert.equal((await wallet.selectCoins(90_000n)).coins.length, 1);
  await assert.rejects(openWallet(chain, { feeFloorPerKw: 100n }), RangeError);
  await assert.rejects(openWallet(chain, { feeFloorPerKw: 5000n, feeCeilingPerKw: 4000n }), RangeError);
});

test('no fee estimate: NO_FEE_ESTIMATE unless a fallback is configured; other chain errors pass through', async () => {
  let failure: Error = new ChainClientError('CHAIN_NO_FEE_ESTIMATE', 'no estimate yet');
  const chain: DeviceWalletOptions['chain'] = {
    estimateFeeratePerKw: async () => {
      throw failure;
    },
    tipHeight: async () => 100,
  };
  const source = fixedSource([utxo('a', 1_000_000n)]);
  const strict = await DeviceWallet.open({ signer, chain, source });
  await rejectsWith(strict.fundingFeeratePerKw(), 'NO_FEE_ESTIMATE');
  await rejectsWith(strict.selectCoins(10_000n), 'NO_FEE_ESTIMATE');
  assert.equal((await strict.selectCoins(10_000n, 2500n)).coins.length, 1, 'an explicit rate needs no estimate');

  const fallback = await DeviceWallet.open({ signer, chain, source, fallbackFeeratePerKw: 5000n, feeCeilingPerKw: 4000n });
  assert.equal(await fallback.fundingFeeratePerKw(), 4000n);
  failure = new ChainClientError('CHAIN_UNREACHABLE', 'down');
  await rejectsWith(fallback.fundingFeeratePerKw(), 'CHAIN_UNREACHABLE');
});

// ---- locks -----------------------------------------------------------------------------------------

test('locks are stored before selectCoins returns and survive a restart; release is stored too', async () => {
  const chain = new Simnet();
  const a = await chain.faucet(RECEIVE, 100_000n);
  const b = await chain.faucet(RECEIVE, 200_000n);
  const store = new MemoryStore();
  let wallet = await openWallet(chain, { store });
  const before = store.commits;
  const { coins } = await wallet.selectCoins(50_000n, 2500n);
  assert.deepEqual(coins[0]!.outpoint, a);
  assert.equal(store.commits, before + 1, 'one commit, already done');
  assert.deepEqual((await store.list('wallet/lock/')).map((e) => e.key), [`wallet/lock/${a.txid}:0`]);

  await store.close();
  store.reopen();
  wallet = await openWallet(chain, { store });
  assert.deepEqual(wallet.lockedOutpoints(), [`${a.txid}:0`]);
  assert.deepEqual((await wallet.selectCoins(50_000n, 2500n)).coins[0]!.outpoint, b);
  await wallet.release([a]);
  await wallet.reserve([{ txid: 'ab'.repeat(32), vout: 3 }]);

  await store.close();
  store.reopen();
  wallet = await openWallet(chain, { store });
  assert.deepEqual(wallet.lockedOutpoints(), [`${'ab'.repeat(32)}:3`, `${b.txid}:0`].sort());
  assert.deepEqual((await wallet.selectCoins(50_000n, 2500n)).coins[0]!.outpoint, a);
});

test('a failed lock commit hands out no coins, and the lock store catches up on the next commit', async () => {
  const chain = new Simnet();
  await chain.faucet(RECEIVE, 100_000n);
  const store = new MemoryStore();
  const wallet = await openWallet(chain, { store });
  store.failNextCommit();
  await rejectsWith(wallet.selectCoins(50_000n, 2500n), 'STORE_IO');
  assert.deepEqual(wallet.lockedOutpoints(), []);
  const { coins } = await wallet.selectCoins(50_000n, 2500n);
  assert.equal(coins.length, 1);

  // reserve takes effect at once; a failed store is retried by the next commit.
  const other = { txid: 'cd'.repeat(32), vout: 1 };
  store.failNextCommit();
  await rejectsWith(wallet.reserve([other]), 'STORE_IO');
  assert.ok(wallet.lockedOutpoints().includes(`${other.txid}:1`));
  await wallet.release([coins[0]!.outpoint]);
  assert.deepEqual((await store.list('wallet/lock/')).map((e) => e.key), [`wallet/lock/${other.txid}:1`]);
  // A caller that does not wait (the port allows it) does not crash the process on a store failure.
  store.failNextCommit();
  void wallet.release([other]);
  await wallet.balance();
});

test('locks of spent coins are dropped once the spend is buried', async () => {
  const chain = new Simnet();
  await chain.faucet(RECEIVE, 300_000n);
  const store = new MemoryStore();
  const wallet = await openWallet(chain, { store, lockExpiryBlocks: 6 });
  const { coins, changeScript } = await wallet.selectCoins(100_000n, 2500n);
  const funding = buildFundingTransaction({ fundingPubkeys, contributions: [{ coins, amountSat: 100_000n, changeScript }], feerateSatPerVb: 10n });
  await signFundingInputs(funding, 0, signer);
  assert.equal((await chain.broadcast(funding.tx.toBuffer())).accepted, true);
  // Spent in the mempool only: the lock stays (an evicted funding tx would bring the coin back).
  await wallet.balance();
  await chain.mine(1);
  await wallet.balance();
  await chain.mine(4);
  await wallet.balance();
  assert.equal(wallet.lockedOutpoints().length, 1);
  await chain.mine(1);
  await wallet.balance();
  assert.deepEqual(wallet.lockedOutpoints(), []);
  assert.deepEqual(await store.list('wallet/lock/'), []);
});

test('corrupt stored locks are CORRUPT_WALLET_STATE, not guessed at', async () => {
  for (const [key, value] of [
    [`wallet/lock/${'ab'.repeat(32)}:0`, '{"v":2}'],
    [`wallet/lock/${'AB'.repeat(32)}:0`, '{"v":1}'],
    [`wallet/lock/${'ab'.repeat(32)}:01`, '{"v":1}'],
    [`wallet/lock/${'ab'.repeat(32)}:4294967296`, '{"v":1}'],
    ['wallet/lock/nonsense', '{"v":1}'],
  ] as const) {
    const store = new MemoryStore();
    await store.commit([{ key, value: new TextEncoder().encode(value) }]);
    await rejectsWith(openWallet(new Simnet(), { store }), 'CORRUPT_WALLET_STATE');
  }
});

// ---- UTXO sources ----------------------------------------------------------------------------------

test('SimnetUtxoSource: confirmed and mempool coins of the scripts asked; a missing coinbase flag is false', async () => {
  const chain = new Simnet();
  const a = await chain.faucet(RECEIVE, 10_000n);
  const b = await chain.faucet(CHANGE, 20_000n);
  await chain.faucet(STRANGER, 30_000n);
  await chain.mine(2);
  const listed = await new SimnetUtxoSource(chain).listUnspent([RECEIVE, CHANGE]);
  assert.deepEqual(
    listed.map((u) => [u.outpoint, u.valueSat, bytesToHex(u.script), u.confirmations, u.coinbase]),
    [
      [a, 10_000n, bytesToHex(RECEIVE), 5, false],
      [b, 20_000n, bytesToHex(CHANGE), 4, false],
    ],
  );
  const flagged = new SimnetUtxoSource({
    utxosForScript: (script) => [{ outpoint: a, output: { valueSat: 5n, script }, blockHeight: 1, confirmations: 3, coinbase: true }],
  });
  assert.equal((await flagged.listUnspent([RECEIVE]))[0]!.coinbase, true);
});

function coinbaseTx(tag: string, outputs: Array<{ script: Uint8Array; valueSat: bigint }>): Transaction {
  const tx = new Transaction();
  tx.version = 2;
  tx.addInput(new Uint8Array(32), 0xffffffff, 0xffffffff, compileScript([scriptNumber(tag.length + 1), new TextEncoder().encode(tag)]));
  for (const o of outputs) tx.addOutput(o.script, o.valueSat);
  return tx;
}

function spendTx(inputs: OutPoint[], outputs: Array<{ script: Uint8Array; valueSat: bigint }>, nonce = 0): Transaction {
  const tx = new Transaction();
  tx.version = 2;
  tx.locktime = nonce;
  for (const i of inputs) tx.addInput(txidToHash(i.txid), i.vout, 0xfffffffd);
  for (const o of outputs) tx.addOutput(o.script, o.valueSat);
  return tx;
}

test('EsploraUtxoSource: confirmations from the tip, coinbase checked only for young coins and cached per txid', async () => {
  const young = coinbaseTx('young', [{ script: RECEIVE, valueSat: 50_000n }]);
  const plain = spendTx([outpoint('x')], [{ script: RECEIVE, valueSat: 7_000n }, { script: CHANGE, valueSat: 8_000n }]);
  const oldCoinbase = coinbaseTx('old', [{ script: CHANGE, valueSat: 60_000n }]);
  const txs = new Map([young, plain, oldCoinbase].map((t) => [t.getId(), t]));
  const fetched: string[] = [];
  const esplora = {
    addressOf: (script: Uint8Array) => `addr-${bytesToHex(script)}`,
    addressUtxos: async (address: string) => {
      if (address === `addr-${bytesToHex(RECEIVE)}`) {
        return [
          { outpoint: { txid: young.getId(), vout: 0 }, valueSat: 50_000n, blockHeight: 950 },
          { outpoint: { txid: plain.getId(), vout: 0 }, valueSat: 7_000n, blockHeight: 990 },
          { outpoint: { txid: 'ee'.repeat(32), vout: 0 }, valueSat: 9_000n, blockHeight: undefined },
        ];
      }
      return [
        { outpoint: { txid: plain.getId(), vout: 1 }, valueSat: 8_000n, blockHeight: 990 },
        { outpoint: { txid: oldCoinbase.getId(), vout: 0 }, valueSat: 60_000n, blockHeight: 100 },
        { outpoint: { txid: 'dd'.repeat(32), vout: 2 }, valueSat: 1_000n, blockHeight: 999 }, // not found: reorg in progress
      ];
    },
    tipHeight: async () => 1000,
    getTransaction: async (txid: string): Promise<TxStatus | undefined> => {
      fetched.push(txid);
      const tx = txs.get(txid);
      return tx && { tx: tx.toBuffer(), blockHeight: 1, confirmations: 1 };
    },
  };
  const source = new EsploraUtxoSource(esplora);
  const summary = async (): Promise<unknown[]> =>
    (await source.listUnspent([RECEIVE, CHANGE])).map((u) => [u.outpoint.txid.slice(0, 4), u.outpoint.vout, u.valueSat, u.blockHeight, u.confirmations, u.coinbase]);
  const expected = [
    [young.getId().slice(0, 4), 0, 50_000n, 950, 51, true],
    [plain.getId().slice(0, 4), 0, 7_000n, 990, 11, false],
    ['eeee', 0, 9_000n, undefined, 0, false],
    [plain.getId().slice(0, 4), 1, 8_000n, 990, 11, false],
    [oldCoinbase.getId().slice(0, 4), 0, 60_000n, 100, 901, false],
    ['dddd', 2, 1_000n, 999, 2, true],
  ];
  assert.deepEqual(await summary(), expected);
  assert.deepEqual(fetched.sort(), [young.getId(), plain.getId(), 'dd'.repeat(32)].sort());
  fetched.length = 0;
  assert.deepEqual(await summary(), expected);
  assert.deepEqual(fetched, ['dd'.repeat(32)], 'known txids are cached; unknown ones asked again');

  // A server that answers with another transaction is caught.
  const liar = new EsploraUtxoSource({ ...esplora, getTransaction: async () => ({ tx: plain.toBuffer(), blockHeight: 1, confirmations: 1 }) });
  await rejectsWith(liar.listUnspent([RECEIVE]), 'CHAIN_BAD_RESPONSE');
});

test('the device wallet on Esplora leaves a young coinbase alone', async () => {
  const young = coinbaseTx('mined', [{ script: RECEIVE, valueSat: 500_000n }]);
  const source = new EsploraUtxoSource({
    addressOf: (script) => bytesToHex(script),
    addressUtxos: async (address) => (address === bytesToHex(RECEIVE) ? [{ outpoint: { txid: young.getId(), vout: 0 }, valueSat: 500_000n, blockHeight: 950 }] : []),
    tipHeight: async () => 1000,
    getTransaction: async () => ({ tx: young.toBuffer(), blockHeight: 950, confirmations: 51 }),
  });
  const wallet = await DeviceWallet.open({ signer, source, chain: fixedChain() });
  assert.deepEqual(await wallet.balance(), { spendableSat: 0n, unconfirmedSat: 0n, immatureSat: 500_000n, lockedSat: 0n });
});

// ---- block scanner ---------------------------------------------------------------------------------

/** A chain of real bitcoinjs transactions; blocks can be replaced from any height (a reorg). */
class FakeBlocks implements BlockSource {
  blocks: ScannedBlock[] = [];
  blockCalls: number[] = [];
  withPrevHash = true;
  /** Called before block(h) answers (e.g. to reorganise mid-scan). */
  beforeBlock: ((height: number) => void) | undefined;

  constructor(length: number, readonly branch = 'main') {
    for (let h = 0; h < length; h++) this.append([]);
  }

  async tipHeight(): Promise<number> {
    return this.blocks.length - 1;
  }

  /** Like bitcoind's getblockhash; only offered when `withBlockHash` (see blockHash below). */
  withBlockHash = false;
  blockHashCalls = 0;

  async block(height: number): Promise<ScannedBlock> {
    this.blockCalls.push(height);
    this.beforeBlock?.(height);
    const b = this.blocks[height];
    if (!b) throw new ChainClientError('CHAIN_RPC_ERROR', 'Block height out of range', { rpcCode: -8 });
    return this.withPrevHash ? { ...b } : { height: b.height, hash: b.hash, txs: b.txs };
  }

  get blockHash(): ((height: number) => Promise<string>) | undefined {
    if (!this.withBlockHash) return undefined;
    return async (height: number) => {
      this.blockHashCalls++;
      const b = this.blocks[height];
      if (!b) throw new ChainClientError('CHAIN_RPC_ERROR', 'Block height out of range', { rpcCode: -8 });
      return b.hash;
    };
  }

  /** Append a block with a coinbase (paying `coinbaseTo` if given) and `txs`; returns it. */
  append(txs: Transaction[], coinbaseTo?: Uint8Array, branch = this.branch): ScannedBlock {
    const height = this.blocks.length;
    const prevHash = height === 0 ? '00'.repeat(32) : this.blocks[height - 1]!.hash;
    const coinbase = coinbaseTx(`${branch}/${height}`, [{ script: coinbaseTo ?? STRANGER, valueSat: 5_000_000_000n }]);
    const hash = bytesToHex(sha256(new TextEncoder().encode(`${prevHash}/${branch}/${height}/${txs.map((t) => t.getId()).join()}`)));
    const block = { height, hash, prevHash, txs: [coinbase, ...txs] };
    this.blocks.push(block);
    return block;
  }

  /** Drop every block from `height` up. */
  truncate(height: number): void {
    this.blocks.length = height;
  }
}

const SCAN_SCRIPTS = [RECEIVE, CHANGE];

function openScanner(blocks: BlockSource, store = new MemoryStore(), extra: Partial<Parameters<typeof BlockScanUtxoSource.open>[0]> = {}): Promise<BlockScanUtxoSource> {
  return BlockScanUtxoSource.open({ blocks, scripts: SCAN_SCRIPTS, birthHeight: 5, store, ...extra });
}

function listed(utxos: WalletUtxo[]): string[] {
  return utxos.map((u) => `${u.outpoint.txid.slice(0, 8)}:${u.outpoint.vout} ${u.valueSat} h${u.blockHeight} c${u.confirmations}${u.coinbase ? ' cb' : ''}`).sort();
}

function id(tx: Transaction, vout: number, valueSat: bigint, height: number, confirmations: number, coinbase = false): string {
  return `${tx.getId().slice(0, 8)}:${vout} ${valueSat} h${height} c${confirmations}${coinbase ? ' cb' : ''}`;
}

test('block scanner: finds coins from the birth height, marks coinbases, drops spent coins', async () => {
  const chain = new FakeBlocks(3);
  const beforeBirth = spendTx([outpoint('pre')], [{ script: RECEIVE, valueSat: 1_000n }]);
  chain.append([beforeBirth]); // height 3, below birth 5
  chain.append([]);
  const mined = chain.append([], RECEIVE); // 5: coinbase to us
  const pay = spendTx([outpoint('in')], [{ script: RECEIVE, valueSat: 70_000n }, { script: STRANGER, valueSat: 1n }, { script: CHANGE, valueSat: 30_000n }]);
  chain.append([pay]); // 6
  const spend = spendTx([{ txid: pay.getId(), vout: 0 }], [{ script: STRANGER, valueSat: 60_000n }]);
  // Created and spent in the same block: never listed.
  const flash = spendTx([outpoint('in2')], [{ script: CHANGE, valueSat: 5_000n }]);
  const flashSpend = spendTx([{ txid: flash.getId(), vout: 0 }], [{ script: STRANGER, valueSat: 4_000n }]);
  chain.append([spend, flash, flashSpend]); // 7
  chain.append([]); // 8

  const progress: number[] = [];
  const scanner = await openScanner(chain, new MemoryStore(), { onProgress: ({ height, tipHeight }) => progress.push(height * 1000 + tipHeight) });
  const utxos = await scanner.listUnspent(SCAN_SCRIPTS);
  assert.deepEqual(listed(utxos), [id(mined.txs[0]!, 0, 5_000_000_000n, 5, 4, true), id(pay, 2, 30_000n, 6, 3)].sort());
  assert.deepEqual(progress, [5008, 6008, 7008, 8008]);
  assert.deepEqual(listed(await scanner.listUnspent([CHANGE])), [id(pay, 2, 30_000n, 6, 3)]);
  await assert.rejects(scanner.listUnspent([STRANGER]), RangeError);
  assert.deepEqual(await scanner.sync(), { height: 8, hash: chain.blocks[8]!.hash });
});

test('block scanner: progress is stored in batches and a restart resumes without rescanning', async () => {
  const chain = new FakeBlocks(5);
  chain.withPrevHash = false;
  chain.withBlockHash = true;
  const payments: Transaction[] = [];
  for (let h = 5; h < 255; h++) {
    const tx = spendTx([outpoint(`b${h}`)], [{ script: RECEIVE, valueSat: BigInt(h) * 1000n }]);
    payments.push(tx);
    chain.append(h % 50 === 0 ? [tx] : []);
  }
  const store = new MemoryStore();
  let scanner = await openScanner(chain, store, { batchBlocks: 100 });
  const commitsBefore = store.commits;
  assert.equal((await scanner.listUnspent(SCAN_SCRIPTS)).length, 5); // heights 50, 100, 150, 200, 250
  assert.equal(store.commits - commitsBefore, 3, 'after blocks 104, 204 and at the tip 254');
  assert.equal(scanner.scannedHeight, 254);

  await store.close();
  store.reopen();
  for (let h = 255; h < 260; h++) chain.append([]);
  chain.blockCalls = [];
  chain.blockHashCalls = 0;
  scanner = await openScanner(chain, store, { batchBlocks: 100 });
  assert.equal(scanner.scannedHeight, 254);
  const utxos = await scanner.listUnspent(SCAN_SCRIPTS);
  assert.deepEqual(chain.blockCalls, [255, 256, 257, 258, 259], 'only the new blocks');
  assert.equal(chain.blockHashCalls, 3, 'the tip hash before and after, the stored tip hash');
  assert.equal(utxos.length, 5);
  assert.ok(utxos.every((u) => u.confirmations === 259 - u.blockHeight! + 1));
});

test('block scanner: a 2-block reorg drops the orphaned coins, restores what they spent, adds the new ones', async () => {
  for (const withPrevHash of [true, false]) {
    for (const longer of [false, true]) {
      const chain = new FakeBlocks(8);
      chain.withPrevHash = withPrevHash;
      const first = spendTx([outpoint('a')], [{ script: RECEIVE, valueSat: 10_000n }]);
      chain.append([first]); // 8
      const orphanPay = spendTx([outpoint('b')], [{ script: CHANGE, valueSat: 20_000n }]);
      const orphanSpend = spendTx([{ txid: first.getId(), vout: 0 }], [{ script: STRANGER, valueSat: 9_000n }]);
      chain.append([orphanPay, orphanSpend]); // 9
      const orphanMined = chain.append([], RECEIVE); // 10
      const store = new MemoryStore();
      const scanner = await openScanner(chain, store);
      assert.deepEqual(listed(await scanner.listUnspent(SCAN_SCRIPTS)), [id(orphanPay, 0, 20_000n, 9, 2), id(orphanMined.txs[0]!, 0, 5_000_000_000n, 10, 1, true)].sort());

      chain.truncate(9);
      const newPay = spendTx([outpoint('c')], [{ script: RECEIVE, valueSat: 33_000n }]);
      chain.append([newPay], undefined, 'fork'); // 9'
      chain.append([], undefined, 'fork'); // 10'
      if (longer) chain.append([], undefined, 'fork'); // 11'
      const tip = longer ? 11 : 10;
      chain.blockCalls = [];
      const utxos = await scanner.listUnspent(SCAN_SCRIPTS);
      assert.deepEqual(listed(utxos), [id(first, 0, 10_000n, 8, tip - 7), id(newPay, 0, 33_000n, 9, tip - 8)].sort(), `prevHash ${withPrevHash}, longer ${longer}`);
      assert.ok(!chain.blockCalls.includes(5), 'no rescan from birth');
      // The store holds the same as memory: a fresh scanner from it agrees without scanning.
      chain.blockCalls = [];
      const again = await openScanner(chain, store);
      assert.deepEqual(listed(await again.listUnspent(SCAN_SCRIPTS)), listed(utxos));
      assert.deepEqual(chain.blockCalls, [tip]);
    }
  }
});

test('block scanner: a reorg while scanning is caught (by prevHash, or by the tip hash before committing) and undone', async () => {
  for (const withPrevHash of [true, false]) {
    const chain = new FakeBlocks(6);
    chain.withPrevHash = withPrevHash;
    const orphan = spendTx([outpoint('o')], [{ script: RECEIVE, valueSat: 1_111n }]);
    chain.append([orphan]); // 6
    for (let h = 7; h < 12; h++) chain.append([]);
    const replacement = spendTx([outpoint('r')], [{ script: RECEIVE, valueSat: 2_222n }]);
    chain.beforeBlock = (height) => {
      if (height !== 9) return;
      chain.beforeBlock = undefined;
      chain.truncate(6);
      chain.append([replacement], undefined, 'fork');
      for (let h = 7; h < 12; h++) chain.append([], undefined, 'fork');
    };
    const store = new MemoryStore();
    const scanner = await openScanner(chain, store);
    const utxos = await scanner.listUnspent(SCAN_SCRIPTS);
    assert.deepEqual(listed(utxos), [id(replacement, 0, 2_222n, 6, 6)], `prevHash ${withPrevHash}`);
    const again = await openScanner(chain, store);
    assert.deepEqual(listed(await again.listUnspent(SCAN_SCRIPTS)), listed(utxos));
  }
});

test('block scanner: a reorg deeper than the undo data rescans from the birth height', async () => {
  const chain = new FakeBlocks(5);
  const early = spendTx([outpoint('e')], [{ script: RECEIVE, valueSat: 5_000n }]);
  chain.append([early]); // 5
  for (let h = 6; h < 15; h++) chain.append([]);
  const doomed = spendTx([outpoint('d')], [{ script: RECEIVE, valueSat: 6_000n }]);
  chain.append([doomed]); // 15
  const store = new MemoryStore();
  const scanner = await openScanner(chain, store, { keepBlocks: 3 });
  assert.equal((await scanner.listUnspent(SCAN_SCRIPTS)).length, 2);
  assert.equal((await store.list('wallet/scan/undo/')).length, 3);

  chain.truncate(10); // fork below the 3 kept blocks (13, 14, 15)
  for (let h = 10; h < 16; h++) chain.append([], undefined, 'deep');
  chain.blockCalls = [];
  const utxos = await scanner.listUnspent(SCAN_SCRIPTS);
  assert.deepEqual(listed(utxos), [id(early, 0, 5_000n, 5, 11)]);
  assert.ok(chain.blockCalls.includes(5) && chain.blockCalls.includes(15), 'rescanned from 5');
});

test('block scanner: a failed commit leaves the store as it was, and the next sync reloads and catches up', async () => {
  const chain = new FakeBlocks(5);
  const tx = spendTx([outpoint('f')], [{ script: RECEIVE, valueSat: 4_000n }]);
  chain.append([tx]);
  chain.append([]);
  const store = new MemoryStore();
  const scanner = await openScanner(chain, store);
  store.failNextCommit();
  await rejectsWith(scanner.listUnspent(SCAN_SCRIPTS), 'STORE_IO');
  assert.deepEqual(await store.list('wallet/scan/'), []);
  assert.deepEqual(listed(await scanner.listUnspent(SCAN_SCRIPTS)), [id(tx, 0, 4_000n, 5, 2)]);
});

test('block scanner: another birth height or script set discards the stored scan', async () => {
  const chain = new FakeBlocks(5);
  const tx = spendTx([outpoint('g')], [{ script: CHANGE, valueSat: 4_000n }]);
  chain.append([tx]);
  const store = new MemoryStore();
  await (await openScanner(chain, store)).sync();
  const receiveOnly = await openScanner(chain, store, { scripts: [RECEIVE] });
  assert.deepEqual(await receiveOnly.listUnspent([RECEIVE]), []);
  assert.deepEqual((await store.list('wallet/scan/utxo/')).length, 0);
  const later = await openScanner(chain, store, { birthHeight: 6 });
  assert.deepEqual(await later.listUnspent(SCAN_SCRIPTS), []);
});

test('block scanner: corrupt stored state is CORRUPT_WALLET_STATE', async () => {
  const chain = new FakeBlocks(5);
  chain.append([spendTx([outpoint('h')], [{ script: RECEIVE, valueSat: 4_000n }])]);
  chain.append([]);
  const good = new MemoryStore();
  await (await openScanner(chain, good)).sync();
  const entries = await good.list('');
  const utxoKey = entries.find((e) => e.key.startsWith('wallet/scan/utxo/'))!.key;
  const undoKeys = entries.filter((e) => e.key.startsWith('wallet/scan/undo/')).map((e) => e.key);
  assert.equal(undoKeys.length, 2);
  const [undoKey, lastUndoKey] = undoKeys as [string, string];
  const text = (key: string): string => new TextDecoder().decode(entries.find((e) => e.key === key)!.value);
  assert.match(text(utxoKey), /^\{"v":"4000","s":0,"h":5,"c":0\}$/);

  const corruptions: Array<[string, string | undefined]> = [
    ['wallet/scan/state', 'not json'],
    ['wallet/scan/state', '{"v":2,"birth":5,"scripts":[],"height":6}'],
    ['wallet/scan/state', text('wallet/scan/state').replace('"height":6', '"height":6.5')],
    ['wallet/scan/state', undefined], // scan data without a state
    [utxoKey, text(utxoKey).replace('"4000"', '"-1"')],
    [utxoKey, text(utxoKey).replace('"4000"', '4000')],
    [utxoKey, text(utxoKey).replace('"4000"', '"99999999999999999"')],
    [utxoKey, text(utxoKey).replace('"s":0', '"s":2')],
    [utxoKey, text(utxoKey).replace('"h":5', '"h":7')],
    [utxoKey, text(utxoKey).replace('"c":0', '"c":true')],
    [utxoKey, text(utxoKey).replace('}', ',"x":1}')],
    [`wallet/scan/utxo/${'zz'.repeat(32)}:0`, text(utxoKey)],
    [undoKey, text(undoKey).replace(/"hash":"[0-9a-f]+"/, '"hash":"00"')],
    [lastUndoKey, undefined], // undo data no longer reaching the scanned height
    [lastUndoKey, text(lastUndoKey).replace('"s":[]', '"s":[["x",1]]')],
    ['wallet/scan/other', '{}'],
  ];
  for (const [key, value] of corruptions) {
    const store = new MemoryStore();
    await store.commit(entries.map((e) => ({ key: e.key, value: e.value })));
    await store.commit([{ key, value: value === undefined ? undefined : new TextEncoder().encode(value) }]);
    await rejectsWith(openScanner(chain, store), 'CORRUPT_WALLET_STATE');
  }
  // Untouched, the copy opens.
  const copy = new MemoryStore();
  await copy.commit(entries.map((e) => ({ key: e.key, value: e.value })));
  assert.equal((await openScanner(chain, copy)).scannedHeight, 6);
});

test('the device wallet funds from a block scanner: coins, maturity, change', async () => {
  const chain = new FakeBlocks(5);
  const mined = chain.append([], RECEIVE); // coinbase to us at 5: immature until 104
  const pay = spendTx([outpoint('dw')], [{ script: CHANGE, valueSat: 250_000n }]);
  chain.append([pay]);
  const store = new MemoryStore();
  const source = await BlockScanUtxoSource.open({ blocks: chain, scripts: SCAN_SCRIPTS, birthHeight: 5, store });
  const wallet = await DeviceWallet.open({ signer, source, chain: { estimateFeeratePerKw: async () => 2500n, tipHeight: () => chain.tipHeight() }, store });
  assert.deepEqual(await wallet.balance(), { spendableSat: 250_000n, unconfirmedSat: 0n, immatureSat: 5_000_000_000n, lockedSat: 0n });
  const { coins } = await wallet.selectCoins(100_000n);
  assert.deepEqual(coins.map((c) => [c.outpoint.txid, c.key.index]), [[pay.getId(), 1]]);
  for (let h = 7; h < 105; h++) chain.append([]);
  const { coins: matured } = await wallet.selectCoins(1_000_000n);
  assert.deepEqual(matured.map((c) => c.outpoint.txid), [mined.txs[0]!.getId()]);
});

// ---- against the simnet's real blocks ----------------------------------------------------------------

/** A BlockSource over the simnet's serialised blocks, as a bitcoind adapter would parse getblock. */
function simnetBlocks(chain: Simnet): BlockSource & { calls: number } {
  const source = {
    calls: 0,
    tipHeight: () => chain.tipHeight(),
    async block(height: number): Promise<ScannedBlock> {
      source.calls++;
      const info = chain.getBlock(height);
      const raw = chain.rawBlock(height);
      if (!info || !raw) throw new ChainClientError('CHAIN_RPC_ERROR', 'Block height out of range', { rpcCode: -8 });
      return { height, hash: info.hash, prevHash: info.prevHash, txs: Block.fromBuffer(raw).transactions! };
    },
  };
  return source;
}

test('simnet: a mined coinbase is immature until 100 confirmations, then funds a transaction the simnet accepts', async () => {
  const chain = new Simnet();
  await chain.mine(1, { coinbaseScript: RECEIVE });
  const wallet = await openWallet(chain);
  const balance = await wallet.balance();
  assert.equal(balance.spendableSat, 0n);
  assert.ok(balance.immatureSat > 0n);
  await rejectsWith(wallet.selectCoins(100_000n, 2500n), 'INSUFFICIENT_FUNDS');
  await chain.mine(98);
  assert.equal((await wallet.balance()).spendableSat, 0n, '99 confirmations');
  await chain.mine(1);
  const { coins, changeScript } = await wallet.selectCoins(100_000n, 2500n);
  const funding = buildFundingTransaction({ fundingPubkeys, contributions: [{ coins, amountSat: 100_000n, changeScript }], feerateSatPerVb: 10n });
  await signFundingInputs(funding, 0, signer);
  assert.equal((await chain.broadcast(funding.tx.toBuffer())).accepted, true);
});

test('simnet: the block scanner agrees with the simnet index through spends and a reorg', async () => {
  const chain = new Simnet();
  await chain.mine(3);
  const blocks = simnetBlocks(chain);
  const store = new MemoryStore();
  const scanner = await BlockScanUtxoSource.open({ blocks, scripts: SCAN_SCRIPTS, birthHeight: 2, store, keepBlocks: 10 });
  const index = new SimnetUtxoSource(chain);
  const same = async (): Promise<void> => {
    const confirmed = (await index.listUnspent(SCAN_SCRIPTS)).filter((u) => u.confirmations > 0);
    assert.deepEqual(listed(await scanner.listUnspent(SCAN_SCRIPTS)), listed(confirmed));
  };
  await chain.faucet(RECEIVE, 300_000n);
  await chain.mine(1, { coinbaseScript: CHANGE });
  await same();

  const wallet = await DeviceWallet.open({ signer, source: scanner, chain, store });
  const { coins, changeScript } = await wallet.selectCoins(100_000n, 2500n);
  const funding = buildFundingTransaction({ fundingPubkeys, contributions: [{ coins, amountSat: 100_000n, changeScript }], feerateSatPerVb: 10n });
  await signFundingInputs(funding, 0, signer);
  assert.equal((await chain.broadcast(funding.tx.toBuffer())).accepted, true);
  const [spendBlock] = await chain.mine(1);
  await chain.mine(1);
  await same();
  assert.equal(listed(await scanner.listUnspent([CHANGE])).length, 2, 'funding change and the coinbase');

  // Reorganise the spend away: on the chain the faucet coin is unspent again and the change gone (the
  // funding transaction is back in the mempool, which the scanner does not see).
  chain.invalidateBlock(spendBlock!);
  const afterReorg = await scanner.listUnspent(SCAN_SCRIPTS);
  assert.ok(afterReorg.some((u) => u.outpoint.txid === coins[0]!.outpoint.txid), 'the spent coin is back');
  assert.ok(!afterReorg.some((u) => u.outpoint.txid === funding.fundingOutpoint.txid), 'the change is gone');
  // Mined again in a new block: the scanner follows.
  await chain.mine(3);
  await same();
  assert.ok((await scanner.listUnspent(SCAN_SCRIPTS)).some((u) => u.outpoint.txid === funding.fundingOutpoint.txid));
});

test('coin locks no live channel owns are released at start; those a live channel owns stay (crash harness finding)', async () => {
  const { releaseOrphanedCoinLocks } = await import('../src/cli/setup.js');
  const chain = new Simnet();
  for (const v of [100_000n, 200_000n]) await chain.faucet(RECEIVE, v);
  await chain.mine(1);
  const store = new MemoryStore();
  let wallet = await openWallet(chain, { store });
  const owned = (await wallet.selectCoins(150_000n, 2500n)).coins[0]!.outpoint;
  const orphan = (await wallet.selectCoins(50_000n, 2500n)).coins[0]!.outpoint;
  // A restart: the locks come back from the store; only the first coin's channel record was stored.
  wallet = await openWallet(chain, { store });
  assert.equal(wallet.lockedOutpoints().length, 2);
  const payer = { role: 'payer', phase: 'refund_held', fundingInputs: [{ outpoint: owned }] } as never;
  const aborted = { role: 'payer', phase: 'aborted', fundingInputs: [{ outpoint: orphan }] } as never;
  const released = await releaseOrphanedCoinLocks(wallet, { oneway: [payer, aborted], rsmc: [] });
  assert.deepEqual(released, [`${orphan.txid}:${orphan.vout}`]);
  assert.deepEqual(wallet.lockedOutpoints(), [`${owned.txid}:${owned.vout}`]);
  wallet = await openWallet(chain, { store });
  assert.deepEqual(wallet.lockedOutpoints(), [`${owned.txid}:${owned.vout}`], 'the release is durable');
});
