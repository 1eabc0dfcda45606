/**
 * Section 1, the crypto ceiling: sign and verify ops/s of every secp256k1 backend this process loaded and
 * self-tested (src/crypto/backend.ts, native.ts), the point operations of the backend in use (RSMC's key
 * derivations), and SHA-256 of a BIP 143 sighash preimage with @noble/hashes and node:crypto.
 *
 * Also the backend glue for the other processes: every process calls chooseSecp256k1() (the fastest
 * backend that passes its self-test, or TRICKLE_SECP256K1), and the bench's children count the curve
 * operations their node performs, so the section 2/3 ceilings use counted operations, not guesses.
 */
import { createHash } from 'node:crypto';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { ecdsaBackend, ecdsaBackends, type EcdsaBackend } from '../src/crypto/backend.js';
import { chooseSecp256k1 } from '../src/crypto/native.js';
import { fundingScript } from '../src/onchain/funding.js';
import { buildPaymentTransaction } from '../src/onchain/oneway.js';
import { p2wpkhOutput } from '../src/onchain/script.js';
import { segwitV0Sighash } from '../src/onchain/sighash.js';
import { opsPerSec, round, runMeta, type BenchOptions, type Figure, type Section } from './lib.js';

// ---- choosing the backend, and counting its calls in the children ----

let chosen: EcdsaBackend | undefined;

/** chooseSecp256k1() once per process (TRICKLE_SECP256K1 forces one); the name and description in use. */
export function chooseBackend(): { name: string; description: string } {
  chosen ??= chooseSecp256k1();
  return { name: chosen.name, description: chosen.description };
}

type CountedOp = 'sign' | 'verify' | 'publicKey' | 'pointAdd' | 'pointMultiply';
const COUNTED: readonly CountedOp[] = ['sign', 'verify', 'publicKey', 'pointAdd', 'pointMultiply'];
let counts: Record<CountedOp, number> | undefined;

/**
 * For the children: choose the backend and count every sign, verify and point operation made through it
 * (src/crypto/secp256k1.ts asks ecdsaBackend() on every call, so wrapping the active backend's methods
 * sees them all; the cost is one increment per call).
 */
export function useBenchBackend(): { name: string; description: string } {
  const backend = chooseBackend();
  if (!counts) {
    counts = { sign: 0, verify: 0, publicKey: 0, pointAdd: 0, pointMultiply: 0 };
    const active = ecdsaBackend() as unknown as Record<CountedOp, (...args: unknown[]) => unknown>;
    const c = counts;
    for (const op of COUNTED) {
      const original = active[op];
      try {
        active[op] = (...args: unknown[]) => {
          c[op]++;
          return original.apply(active, args);
        };
      } catch {
        counts = undefined; // a frozen backend: no counts, the ceilings say so
        break;
      }
    }
  }
  return backend;
}

/** Curve operations made through the active backend so far (undefined if they could not be counted). */
export function cryptoCounts(): Record<CountedOp, number> | undefined {
  return counts && { ...counts };
}

// ---- measurement ----

export interface CryptoResults {
  /** The backend in use. */
  backend: { name: string; description: string };
  perBackend: Array<{ name: string; description: string; signOpsPerSec: number; verifyOpsPerSec: number }>;
  /** The backend in use: ops/s of each curve operation. */
  inUse: Record<CountedOp, number>;
  preimageBytes: number;
  sha256NobleOpsPerSec: number;
  sha256NodeOpsPerSec: number;
  sighashOpsPerSec: number;
}

const SECRET = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
const OTHER = Uint8Array.from({ length: 32 }, (_, i) => 0x40 + i);
const DIGEST = nobleSha256(new TextEncoder().encode('trickle bench digest'));

/** A real one-way payment transaction (2-of-2 funding input, payee and payer outputs) and its script code. */
function paymentTx(backend: EcdsaBackend): { tx: Uint8Array; scriptCode: Uint8Array; valueSat: bigint } {
  const payer = backend.publicKey(SECRET);
  const payee = backend.publicKey(OTHER);
  const scriptCode = fundingScript(payer, payee);
  const valueSat = 1_000_000n;
  const { tx } = buildPaymentTransaction(
    {
      fundingOutpoint: { txid: '11'.repeat(32), vout: 0 },
      fundingValueSat: valueSat,
      payerFundingPubkey: payer,
      payeeFundingPubkey: payee,
      payerScript: p2wpkhOutput(payer),
      payeeScript: p2wpkhOutput(payee),
      expiryHeight: 1000,
      feerateSatPerVb: 2n,
    },
    123_456_000n,
  );
  return { tx: Uint8Array.from(tx.toBuffer()), scriptCode, valueSat };
}

/**
 * A BIP 143 preimage of that size: version 4, hashPrevouts 32, hashSequence 32, outpoint 36, script code
 * (its length byte + the 71-byte 2-of-2 script), value 8, nSequence 4, hashOutputs 32, nLockTime 4,
 * sighash type 4.
 */
function preimageOf(scriptCode: Uint8Array): Uint8Array {
  const size = 4 + 32 + 32 + 36 + 1 + scriptCode.length + 8 + 4 + 32 + 4 + 4;
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i * 37 + 11) & 0xff;
  out.set([scriptCode.length], 104);
  out.set(scriptCode, 105);
  return out;
}

let memo: Promise<CryptoResults> | undefined;

/** Measured once per bench process (the other sections use the figures as ceilings). */
export function measureCrypto(opts: BenchOptions): Promise<CryptoResults> {
  memo ??= (async () => {
    const backend = chooseBackend();
    const ms = opts.quick ? 300 : 1500;
    const perBackend: CryptoResults['perBackend'] = [];
    for (const b of ecdsaBackends()) {
      const pub = b.publicKey(SECRET);
      const sig = b.sign(DIGEST, SECRET);
      if (!b.verify(sig, DIGEST, pub)) throw new Error(`${b.name}: its own signature does not verify`);
      opts.log(`crypto: ${b.description}`);
      perBackend.push({
        name: b.name,
        description: b.description,
        signOpsPerSec: opsPerSec(() => b.sign(DIGEST, SECRET), ms),
        verifyOpsPerSec: opsPerSec(() => b.verify(sig, DIGEST, pub), ms),
      });
    }
    const active = ecdsaBackend();
    const pub = active.publicKey(SECRET);
    const other = active.publicKey(OTHER);
    const row = perBackend.find((p) => p.name === active.name)!;
    const inUse: Record<CountedOp, number> = {
      sign: row.signOpsPerSec,
      verify: row.verifyOpsPerSec,
      publicKey: opsPerSec(() => active.publicKey(SECRET), ms / 2),
      pointAdd: opsPerSec(() => active.pointAdd(pub, other), ms / 2),
      pointMultiply: opsPerSec(() => active.pointMultiply(pub, OTHER), ms / 2),
    };
    const { tx, scriptCode, valueSat } = paymentTx(active);
    const preimage = preimageOf(scriptCode);
    return {
      backend,
      perBackend,
      inUse,
      preimageBytes: preimage.length,
      sha256NobleOpsPerSec: opsPerSec(() => nobleSha256(preimage), ms),
      sha256NodeOpsPerSec: opsPerSec(() => createHash('sha256').update(preimage).digest(), ms),
      sighashOpsPerSec: opsPerSec(() => segwitV0Sighash(tx, 0, scriptCode, valueSat), ms),
    };
  })();
  return memo;
}

const cap = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

export const cryptoSection: Section = {
  name: '1. crypto ceiling',
  async run(opts: BenchOptions): Promise<Figure[]> {
    const c = await measureCrypto(opts);
    runMeta.backend = c.backend.name;
    runMeta.backendDescription = c.backend.description;
    runMeta.backendsLoaded = c.perBackend.map((b) => b.name);
    const figures: Figure[] = [];
    const inUse = c.perBackend.find((b) => b.name === c.backend.name)!;
    figures.push(
      { key: 'signOpsPerSec', label: `ECDSA sign, backend in use (${c.backend.description})`, value: round(inUse.signOpsPerSec), unit: 'ops/s' },
      { key: 'verifyOpsPerSec', label: `ECDSA verify, backend in use (${c.backend.description})`, value: round(inUse.verifyOpsPerSec), unit: 'ops/s' },
    );
    for (const b of c.perBackend) {
      figures.push(
        { key: `signOpsPerSec${cap(b.name)}`, label: `ECDSA sign: ${b.description}`, value: round(b.signOpsPerSec), unit: 'ops/s' },
        { key: `verifyOpsPerSec${cap(b.name)}`, label: `ECDSA verify: ${b.description}`, value: round(b.verifyOpsPerSec), unit: 'ops/s' },
      );
    }
    figures.push(
      { key: 'pointMultiplyOpsPerSec', label: `k·P, backend in use (RSMC key derivation)`, value: round(c.inUse.pointMultiply), unit: 'ops/s' },
      { key: 'publicKeyOpsPerSec', label: `k·G, backend in use (RSMC per-commitment points)`, value: round(c.inUse.publicKey), unit: 'ops/s' },
      { key: 'pointAddOpsPerSec', label: `P+Q, backend in use`, value: round(c.inUse.pointAdd), unit: 'ops/s' },
      {
        key: 'sha256PreimageOpsPerSecNoble',
        label: `SHA-256 of a ${c.preimageBytes}-byte BIP 143 preimage (one-way payment tx), @noble/hashes`,
        value: round(c.sha256NobleOpsPerSec),
        unit: 'ops/s',
        ceiling: { key: 'sha256PreimageOpsPerSecNode', label: 'same with node:crypto (OpenSSL)', value: round(c.sha256NodeOpsPerSec), unit: 'ops/s' },
      },
      {
        key: 'sighashOpsPerSec',
        label: 'whole BIP 143 sighash of a payment tx (segwitV0Sighash: parse + hashPrevouts/Sequence/Outputs + double SHA-256)',
        value: round(c.sighashOpsPerSec),
        unit: 'ops/s',
      },
    );
    return figures;
  },
};
