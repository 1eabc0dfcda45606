/**
 * BOLT 8 beyond the spec's vectors (src/session/noise.ts): random-key handshakes, the
 * transactional receive path that lets a session survive duplicated or forged bus messages
 * (bolt8-facts §9), key rotation over 1,200 messages each way against an independent model,
 * size limits, call order, malformed acts and secret hygiene.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { hkdf as nobleHkdf } from '@noble/hashes/hkdf.js';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, concatBytes, hexToBytes } from '../src/bytes.js';
import { CURVE_ORDER, isValidPublicKey, randomSecretKey } from '../src/crypto/secp256k1.js';
import { bigIntToBytes32 } from '../src/bytes.js';
import {
  MAX_MESSAGE_BYTES,
  NoiseError,
  NoiseInitiator,
  NoiseResponder,
  softwareStaticKey,
  type NoiseHandshakeResult,
  type NoiseStaticKey,
  type NoiseTraceEvent,
} from '../src/session/noise.js';
import { expectNoiseError } from './helpers/noise.js';


interface Session {
  initiator: NoiseHandshakeResult;
  responder: NoiseHandshakeResult;
  initiatorKey: NoiseStaticKey;
  responderKey: NoiseStaticKey;
  /** The split event of each side (sk, rk, salt = final ck), for the independent model. */
  initiatorSplit: NoiseTraceEvent;
}

function handshake(): Session {
  const initiatorKey = softwareStaticKey(randomSecretKey());
  const responderKey = softwareStaticKey(randomSecretKey());
  const events: NoiseTraceEvent[] = [];
  const i = new NoiseInitiator(initiatorKey, responderKey.publicKey, undefined, (e) => void events.push(e));
  const r = new NoiseResponder(responderKey);
  const act1 = i.act1();
  const act2 = r.act2(act1);
  const act3 = i.act3(act2);
  assert.deepEqual([act1.length, act2.length, act3.length], [50, 50, 66]);
  const responder = r.finish(act3);
  const initiator = i.result();
  const initiatorSplit = events.find((e) => e.step === 'act3.initiator.split')!;
  return { initiator, responder, initiatorKey, responderKey, initiatorSplit };
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

// ---------------------------------------------------------------------------------------------

test('random keys: both sides agree on keys, peer identity, handshake hash and chaining key', () => {
  const s = handshake();
  assert.deepEqual(s.initiator.remoteStatic, s.responderKey.publicKey);
  assert.deepEqual(s.responder.remoteStatic, s.initiatorKey.publicKey);
  assert.deepEqual(s.initiator.handshakeHash, s.responder.handshakeHash);
  assert.deepEqual(s.initiator.chainingKey, s.responder.chainingKey);
  assert.equal(s.initiator.handshakeHash.length, 32);
  assert.equal(s.initiator.chainingKey.length, 32);
  for (const m of [new Uint8Array(0), enc('a'), enc('hello over mqtt'), new Uint8Array(MAX_MESSAGE_BYTES).fill(7)]) {
    assert.deepEqual(s.responder.receiver.decrypt(s.initiator.sender.encrypt(m)), m);
    assert.deepEqual(s.initiator.receiver.decrypt(s.responder.sender.encrypt(m)), m);
  }
  // Directions use different keys: a frame cannot be reflected back to its sender.
  expectNoiseError(() => s.initiator.receiver.decrypt(s.initiator.sender.encrypt(enc('x'))), 'FRAME_BAD_LENGTH_TAG');
});

test('result() returns the same stateful ciphers every time', () => {
  const k = softwareStaticKey(randomSecretKey());
  const i = new NoiseInitiator(softwareStaticKey(randomSecretKey()), k.publicKey);
  const r = new NoiseResponder(k);
  r.finish(i.act3(r.act2(i.act1())));
  assert.equal(i.result(), i.result());
  assert.equal(i.result().sender, i.result().sender);
});

test('fresh ephemerals: two handshakes between the same nodes give different sessions', () => {
  const a = softwareStaticKey(randomSecretKey());
  const b = softwareStaticKey(randomSecretKey());
  const run = (): NoiseHandshakeResult => {
    const i = new NoiseInitiator(a, b.publicKey);
    const r = new NoiseResponder(b);
    r.finish(i.act3(r.act2(i.act1())));
    return i.result();
  };
  const x = run();
  const y = run();
  assert.notDeepEqual(x.handshakeHash, y.handshakeHash);
  assert.notDeepEqual(x.sender.encrypt(enc('same')), y.sender.encrypt(enc('same')));
});

test('the responder learns the initiator identity only from Act Three; a wrong responder key fails Act One', () => {
  const real = softwareStaticKey(randomSecretKey());
  const other = softwareStaticKey(randomSecretKey());
  const i = new NoiseInitiator(softwareStaticKey(randomSecretKey()), real.publicKey);
  expectNoiseError(() => new NoiseResponder(other).act2(i.act1()), 'ACT1_BAD_TAG');
});

test('acts spliced from another handshake fail the tag at the right act', () => {
  const rKey = softwareStaticKey(randomSecretKey());
  const mk = (): { i: NoiseInitiator; r: NoiseResponder } => ({
    i: new NoiseInitiator(softwareStaticKey(randomSecretKey()), rKey.publicKey),
    r: new NoiseResponder(rKey),
  });
  const a = mk();
  const b = mk();
  const a2 = a.r.act2(a.i.act1());
  b.r.act2(b.i.act1());
  // Act Two from handshake A reaching initiator B.
  expectNoiseError(() => b.i.act3(a2), 'ACT2_BAD_TAG');
  // Act Three from handshake A reaching responder B.
  expectNoiseError(() => b.r.finish(a.i.act3(a2)), 'ACT3_BAD_CIPHERTEXT');
});

// ---------------------------------------------------------------------------------------------
// Transactional receive

test('a duplicated frame fails and leaves the receiver state unchanged', () => {
  const { initiator: tx, responder: rx } = handshake();
  const f1 = tx.sender.encrypt(enc('one'));
  assert.deepEqual(rx.receiver.decrypt(f1), enc('one'));
  expectNoiseError(() => rx.receiver.decrypt(f1), 'FRAME_BAD_LENGTH_TAG');
  expectNoiseError(() => rx.receiver.decrypt(f1), 'FRAME_BAD_LENGTH_TAG');
  assert.equal(rx.receiver.messagesProcessed, 1);
  assert.deepEqual(rx.receiver.decrypt(tx.sender.encrypt(enc('two'))), enc('two'));
  assert.equal(rx.receiver.messagesProcessed, 2);
});

test('truncated frames fail (too short or length mismatch) and the genuine frame still decrypts', () => {
  const { initiator: tx, responder: rx } = handshake();
  const m = enc('a message of some length');
  for (const cut of [1, 5, 16, m.length]) {
    const f = tx.sender.encrypt(m);
    expectNoiseError(() => rx.receiver.decrypt(f.subarray(0, f.length - cut)), 'FRAME_LENGTH_MISMATCH');
    assert.deepEqual(rx.receiver.decrypt(f), m);
  }
  for (const keep of [0, 1, 17, 18, 33]) {
    const f = tx.sender.encrypt(m);
    expectNoiseError(() => rx.receiver.decrypt(f.subarray(0, keep)), 'FRAME_TOO_SHORT');
    assert.deepEqual(rx.receiver.decrypt(f), m);
  }
  // The shortest legal frame (empty message) is 34 bytes; 33 bytes of it are too short.
  const empty = tx.sender.encrypt(new Uint8Array(0));
  assert.equal(empty.length, 34);
  expectNoiseError(() => rx.receiver.decrypt(empty.subarray(0, 33)), 'FRAME_TOO_SHORT');
  assert.deepEqual(rx.receiver.decrypt(empty), new Uint8Array(0));
});

test('one flipped bit anywhere fails the right tag and leaves the state unchanged', () => {
  const { initiator: tx, responder: rx } = handshake();
  const m = enc('flip me');
  const frameLength = 18 + m.length + 16;
  const positions = [0, 1, 2, 9, 16, 17, 18, 19, 18 + m.length - 1, 18 + m.length, frameLength - 1];
  for (const at of positions) {
    for (const bit of [0, 7]) {
      const f = tx.sender.encrypt(m);
      const bad = Uint8Array.from(f);
      bad[at]! ^= 1 << bit;
      expectNoiseError(() => rx.receiver.decrypt(bad), at < 18 ? 'FRAME_BAD_LENGTH_TAG' : 'FRAME_BAD_TAG');
      assert.deepEqual(rx.receiver.decrypt(f), m, `genuine frame after flipping byte ${at} bit ${bit}`);
    }
  }
  assert.equal(rx.receiver.messagesProcessed, positions.length * 2);
});

test('extra trailing bytes, or two frames in one payload, are rejected whole', () => {
  const { initiator: tx, responder: rx } = handshake();
  const f1 = tx.sender.encrypt(enc('first'));
  const f2 = tx.sender.encrypt(enc('second'));
  expectNoiseError(() => rx.receiver.decrypt(concatBytes(f1, Uint8Array.of(0))), 'FRAME_LENGTH_MISMATCH');
  expectNoiseError(() => rx.receiver.decrypt(concatBytes(f1, f2)), 'FRAME_LENGTH_MISMATCH');
  assert.deepEqual(rx.receiver.decrypt(f1), enc('first'));
  assert.deepEqual(rx.receiver.decrypt(f2), enc('second'));
});

test('a frame from another session fails and the session carries on', () => {
  const a = handshake();
  const b = handshake();
  const stranger = b.initiator.sender.encrypt(enc('not for you'));
  expectNoiseError(() => a.responder.receiver.decrypt(stranger), 'FRAME_BAD_LENGTH_TAG');
  assert.deepEqual(a.responder.receiver.decrypt(a.initiator.sender.encrypt(enc('for you'))), enc('for you'));
});

test('a forged body with a genuine length prefix fails FRAME_BAD_TAG without consuming the nonces', () => {
  const { initiator: tx, responder: rx } = handshake();
  const f = tx.sender.encrypt(enc('12345'));
  const other = tx.sender.encrypt(enc('abcde'));
  // Same length, so the first frame's prefix verifies; the body belongs to nonce 3, not 1.
  expectNoiseError(() => rx.receiver.decrypt(concatBytes(f.subarray(0, 18), other.subarray(18))), 'FRAME_BAD_TAG');
  assert.deepEqual(rx.receiver.decrypt(f), enc('12345'));
  assert.deepEqual(rx.receiver.decrypt(other), enc('abcde'));
});

test('failures right at a key rotation leave the rotated state intact', () => {
  const { initiator: tx, responder: rx } = handshake();
  let last: Uint8Array = new Uint8Array(0);
  for (let i = 0; i < 500; i++) {
    last = tx.sender.encrypt(enc(`m${i}`));
    rx.receiver.decrypt(last);
  }
  // The receiver rotated after message 499; a replay of it must not undo that.
  expectNoiseError(() => rx.receiver.decrypt(last), 'FRAME_BAD_LENGTH_TAG');
  const next = tx.sender.encrypt(enc('m500'));
  expectNoiseError(() => rx.receiver.decrypt(next.subarray(0, next.length - 1)), 'FRAME_LENGTH_MISMATCH');
  assert.deepEqual(rx.receiver.decrypt(next), enc('m500'));
  assert.equal(rx.receiver.messagesProcessed, 501);
});

// ---------------------------------------------------------------------------------------------
// Rotation

/** Independent model of one direction (noble HKDF and ChaCha20-Poly1305 directly). */
function modelFrames(key: Uint8Array, ck: Uint8Array, messages: Uint8Array[]): Uint8Array[] {
  let k: Uint8Array = key;
  let c: Uint8Array = ck;
  let n = 0;
  const aead = (pt: Uint8Array): Uint8Array => {
    const nonce = new Uint8Array(12);
    new DataView(nonce.buffer).setBigUint64(4, BigInt(n), true);
    n++;
    return chacha20poly1305(k, nonce, new Uint8Array(0)).encrypt(pt);
  };
  return messages.map((m) => {
    const frame = concatBytes(aead(Uint8Array.of(m.length >> 8, m.length & 0xff)), aead(m));
    if (n === 1000) {
      const okm = nobleHkdf(nobleSha256, k, c, new Uint8Array(0), 64);
      [c, k, n] = [okm.slice(0, 32), okm.slice(32), 0];
    }
    return frame;
  });
}

test('rotation across 1,200 messages both ways matches an independent model', () => {
  const s = handshake();
  const count = 1200;
  const toResponder = Array.from({ length: count }, (_, i) => enc(`i→r ${i}`));
  const toInitiator = Array.from({ length: count }, (_, i) => new Uint8Array(i % 40).fill(i & 0xff));
  const split = s.initiatorSplit.values;
  const modelIR = modelFrames(split.sk!, split.salt!, toResponder);
  const modelRI = modelFrames(split.rk!, split.salt!, toInitiator);
  for (let i = 0; i < count; i++) {
    const a = s.initiator.sender.encrypt(toResponder[i]!);
    const b = s.responder.sender.encrypt(toInitiator[i]!);
    assert.equal(bytesToHex(a), bytesToHex(modelIR[i]!), `i→r message ${i}`);
    assert.equal(bytesToHex(b), bytesToHex(modelRI[i]!), `r→i message ${i}`);
    assert.deepEqual(s.responder.receiver.decrypt(a), toResponder[i]);
    assert.deepEqual(s.initiator.receiver.decrypt(b), toInitiator[i]);
  }
  for (const c of [s.initiator.sender, s.initiator.receiver, s.responder.sender, s.responder.receiver]) {
    assert.equal(c.messagesProcessed, count);
  }
  // Sanity of the model itself: without rotation, message 500 would differ.
  const unrotated = modelFrames(split.sk!, split.salt!, [toResponder[0]!]);
  assert.notEqual(bytesToHex(unrotated[0]!), bytesToHex(modelIR[500]!));
});

test('directions rotate independently', () => {
  const s = handshake();
  for (let i = 0; i < 700; i++) s.responder.receiver.decrypt(s.initiator.sender.encrypt(enc(`${i}`)));
  // The other direction is still on its first key and nonce 0.
  const split = s.initiatorSplit.values;
  const [expected] = modelFrames(split.rk!, split.salt!, [enc('reply')]);
  assert.deepEqual(s.responder.sender.encrypt(enc('reply')), expected);
});

// ---------------------------------------------------------------------------------------------
// Limits, order, malformed input

test('MESSAGE_TOO_LARGE above 65535 bytes, without consuming a nonce', () => {
  const { initiator: tx, responder: rx } = handshake();
  expectNoiseError(() => tx.sender.encrypt(new Uint8Array(MAX_MESSAGE_BYTES + 1)), 'MESSAGE_TOO_LARGE');
  assert.equal(tx.sender.messagesProcessed, 0);
  const max = new Uint8Array(MAX_MESSAGE_BYTES).fill(0xa5);
  const frame = tx.sender.encrypt(max);
  assert.equal(frame.length, 65569);
  assert.deepEqual(rx.receiver.decrypt(frame), max);
  assert.throws(() => tx.sender.encrypt('text' as unknown as Uint8Array), TypeError);
});

test('WRONG_STATE on out-of-order calls; a failed handshake stays failed', () => {
  const rKey = softwareStaticKey(randomSecretKey());
  const iKey = softwareStaticKey(randomSecretKey());

  const i = new NoiseInitiator(iKey, rKey.publicKey);
  const r = new NoiseResponder(rKey);
  expectNoiseError(() => i.act3(new Uint8Array(50)), 'WRONG_STATE');
  expectNoiseError(() => i.result(), 'WRONG_STATE');
  expectNoiseError(() => r.finish(new Uint8Array(66)), 'WRONG_STATE');
  const act1 = i.act1();
  expectNoiseError(() => i.act1(), 'WRONG_STATE');
  expectNoiseError(() => i.result(), 'WRONG_STATE');
  const act2 = r.act2(act1);
  expectNoiseError(() => r.act2(act1), 'WRONG_STATE');
  const act3 = i.act3(act2);
  expectNoiseError(() => i.act3(act2), 'WRONG_STATE');
  expectNoiseError(() => i.act1(), 'WRONG_STATE');
  r.finish(act3);
  expectNoiseError(() => r.finish(act3), 'WRONG_STATE');
  expectNoiseError(() => r.act2(act1), 'WRONG_STATE');

  // After a failure even the genuine act is refused: BOLT 8 closes the connection.
  const i2 = new NoiseInitiator(iKey, rKey.publicKey);
  const r2 = new NoiseResponder(rKey);
  const good1 = i2.act1();
  const bad1 = Uint8Array.from(good1);
  bad1[49]! ^= 1;
  expectNoiseError(() => r2.act2(bad1), 'ACT1_BAD_TAG');
  expectNoiseError(() => r2.act2(good1), 'WRONG_STATE');
  const r3 = new NoiseResponder(rKey);
  const good2 = r3.act2(good1);
  const bad2 = Uint8Array.from(good2);
  bad2[0] = 1;
  expectNoiseError(() => i2.act3(bad2), 'ACT_BAD_VERSION');
  expectNoiseError(() => i2.act3(good2), 'WRONG_STATE');
  expectNoiseError(() => i2.result(), 'WRONG_STATE');
});

/** A 33-byte string with a valid prefix whose x is not on the curve. */
function offCurvePoint(): Uint8Array {
  for (let x = 1; ; x++) {
    const p = concatBytes(Uint8Array.of(0x02), bigIntToBytes32(BigInt(x)));
    if (!isValidPublicKey(p)) return p;
  }
}

test('malformed acts: wrong length, bad version, bad pubkey prefix or off-curve key', () => {
  const rKey = softwareStaticKey(randomSecretKey());
  const iKey = softwareStaticKey(randomSecretKey());
  // A fixed responder ephemeral, so a new responder fed the same Act One answers with the same
  // Act Two and the reference Act Three fits it.
  const rEphemeral = randomSecretKey();
  const fresh = (): { i: NoiseInitiator; r: NoiseResponder } => ({
    i: new NoiseInitiator(iKey, rKey.publicKey),
    r: new NoiseResponder(rKey, rEphemeral),
  });
  const ref = fresh();
  const act1 = ref.i.act1();
  const act2 = ref.r.act2(act1);
  const act3 = ref.i.act3(act2);

  const withByte = (act: Uint8Array, at: number, value: number): Uint8Array => {
    const out = Uint8Array.from(act);
    out[at] = value;
    return out;
  };
  const withKey = (act: Uint8Array, key: Uint8Array): Uint8Array => {
    const out = Uint8Array.from(act);
    out.set(key, 1);
    return out;
  };

  const lengths = (n: number): Uint8Array[] => [new Uint8Array(0), new Uint8Array(n - 1), new Uint8Array(n + 1)];
  // Act One, at the responder.
  for (const a of [...lengths(50), act1.subarray(0, 49), concatBytes(act1, Uint8Array.of(0))]) {
    expectNoiseError(() => fresh().r.act2(a), 'ACT_BAD_LENGTH');
  }
  for (const v of [1, 2, 0xff]) expectNoiseError(() => fresh().r.act2(withByte(act1, 0, v)), 'ACT_BAD_VERSION');
  for (const prefix of [0x00, 0x04, 0x05, 0x06, 0x07]) {
    expectNoiseError(() => fresh().r.act2(withByte(act1, 1, prefix)), 'ACT_BAD_PUBKEY');
  }
  expectNoiseError(() => fresh().r.act2(withKey(act1, offCurvePoint())), 'ACT_BAD_PUBKEY');

  // Act Two, at an initiator that has sent Act One.
  const afterAct1 = (): NoiseInitiator => {
    const x = new NoiseInitiator(iKey, rKey.publicKey);
    x.act1();
    return x;
  };
  for (const a of [...lengths(50), act3]) expectNoiseError(() => afterAct1().act3(a), 'ACT_BAD_LENGTH');
  expectNoiseError(() => afterAct1().act3(withByte(act2, 0, 1)), 'ACT_BAD_VERSION');
  expectNoiseError(() => afterAct1().act3(withByte(act2, 1, 0x04)), 'ACT_BAD_PUBKEY');
  expectNoiseError(() => afterAct1().act3(withKey(act2, offCurvePoint())), 'ACT_BAD_PUBKEY');

  // Act Three, at the responder that answered the reference Act One.
  const afterAct2 = (): NoiseResponder => {
    const x = new NoiseResponder(rKey, rEphemeral);
    assert.deepEqual(x.act2(act1), act2);
    return x;
  };
  assert.deepEqual(afterAct2().finish(act3).remoteStatic, iKey.publicKey);
  for (const a of [...lengths(66), act1]) expectNoiseError(() => afterAct2().finish(a), 'ACT_BAD_LENGTH');
  expectNoiseError(() => afterAct2().finish(withByte(act3, 0, 1)), 'ACT_BAD_VERSION');
  expectNoiseError(() => afterAct2().finish(withByte(act3, 20, act3[20]! ^ 0x80)), 'ACT3_BAD_CIPHERTEXT');
  expectNoiseError(() => afterAct2().finish(withByte(act3, 55, act3[55]! ^ 0x01)), 'ACT3_BAD_TAG');

  // A wrong type is a programming error, not bad peer data.
  assert.throws(() => fresh().r.act2([0] as unknown as Uint8Array), TypeError);
});

// ---------------------------------------------------------------------------------------------
// Keys and hygiene

test('softwareStaticKey validates its secret and does ECDH both ways', () => {
  assert.throws(() => softwareStaticKey(new Uint8Array(32)), RangeError);
  assert.throws(() => softwareStaticKey(bigIntToBytes32(CURVE_ORDER)), RangeError);
  assert.throws(() => softwareStaticKey(new Uint8Array(31).fill(1)), RangeError);
  assert.throws(() => softwareStaticKey('11' as unknown as Uint8Array), TypeError);
  const a = softwareStaticKey(randomSecretKey());
  const b = softwareStaticKey(randomSecretKey());
  assert.deepEqual(a.ecdh(b.publicKey), b.ecdh(a.publicKey));
  assert.equal(a.ecdh(b.publicKey).length, 32);
  expectNoiseError(() => a.ecdh(offCurvePoint()), 'BAD_PUBKEY');
  expectNoiseError(() => a.ecdh(withPrefix(b.publicKey, 0x04)), 'BAD_PUBKEY');
  expectNoiseError(() => a.ecdh(b.publicKey.subarray(0, 32)), 'BAD_PUBKEY');
  expectNoiseError(() => new NoiseInitiator(a, offCurvePoint()), 'BAD_PUBKEY');
  assert.throws(() => new NoiseInitiator(a, b.publicKey, new Uint8Array(32)), RangeError);
});

function withPrefix(key: Uint8Array, prefix: number): Uint8Array {
  const out = Uint8Array.from(key);
  out[0] = prefix;
  return out;
}

test('the secret is copied: wiping the caller buffer does not change the key', () => {
  const secret = randomSecretKey();
  const peer = softwareStaticKey(randomSecretKey());
  const key = softwareStaticKey(secret);
  const before = key.ecdh(peer.publicKey);
  secret.fill(1);
  assert.deepEqual(key.ecdh(peer.publicKey), before);
});

test('no key material in JSON, inspect, toString or error messages', () => {
  const secret = hexToBytes('41'.repeat(32));
  const key = softwareStaticKey(secret);
  const rKey = softwareStaticKey(randomSecretKey());
  const i = new NoiseInitiator(key, rKey.publicKey, hexToBytes('42'.repeat(32)));
  const r = new NoiseResponder(rKey);
  const act1 = i.act1();
  const s = { i: i.act3(r.act2(act1)), result: i.result() };
  r.finish(s.i);
  const objects: unknown[] = [key, i, r, s.result.sender, s.result.receiver];
  for (const o of objects) {
    const shown = `${JSON.stringify(o)} ${inspect(o, { depth: 5, showHidden: true })} ${String(o)}`;
    assert.ok(!shown.includes('65, 65, 65'), 'static secret bytes');
    assert.ok(!shown.includes('66, 66, 66'), 'ephemeral secret bytes');
    assert.ok(!/4141414141|4242424242/.test(shown));
  }
  assert.equal(JSON.stringify(s.result.sender), '{}');
  assert.equal(JSON.stringify(i), '{}');
  // Error messages carry sizes and codes only.
  const errors: NoiseError[] = [
    expectNoiseError(() => s.result.receiver.decrypt(new Uint8Array(40)), 'FRAME_BAD_LENGTH_TAG'),
    expectNoiseError(() => new NoiseResponder(rKey).act2(withPrefix(act1, 1)), 'ACT_BAD_VERSION'),
    expectNoiseError(() => key.ecdh(offCurvePoint()), 'BAD_PUBKEY'),
  ];
  for (const e of errors) {
    assert.ok(!/[0-9a-f]{16}/i.test(e.message), e.message);
    assert.ok(e.message.startsWith(`${e.code}: `));
  }
});
