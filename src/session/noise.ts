/**
 * BOLT 8 transport: Noise_XK_secp256k1_ChaChaPoly_SHA256 (lightning/bolts `08-transport.md`).
 *
 * Pure and I/O-free. The handshake is two state objects, {@link NoiseInitiator} and
 * {@link NoiseResponder}, each turning the peer's act into its own next act; {@link NoiseCipher}
 * frames and unframes transport messages for one direction. The caller moves the bytes.
 * Comments such as `Act Two (initiator) 5.` name the numbered step of BOLT 8 they implement.
 * Ephemeral keys can be injected so the spec's vectors check byte for byte.
 *
 * Bus adaptation (one act or frame per MQTT message): one call handles one whole act or frame, and
 * {@link NoiseCipher.decrypt} changes no state unless both tags verify, so a duplicated or forged
 * frame can be dropped without losing the session. The bytes on the wire are plain BOLT 8.
 *
 * @example
 * const initiator = new NoiseInitiator(softwareStaticKey(mySecret), responderPub);
 * const responder = new NoiseResponder(softwareStaticKey(theirSecret));
 * const act3 = initiator.act3(responder.act2(initiator.act1()));
 * const theirs = responder.finish(act3);
 * const mine = initiator.result();
 * theirs.receiver.decrypt(mine.sender.encrypt(message)); // === message
 */
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { concatBytes } from '../bytes.js';
import { hmacSha256, sha256 } from '../crypto/hash.js';
import { isValidPublicKey, isValidSecretKey, multiplyPoint, publicKeyOf, randomSecretKey } from '../crypto/secp256k1.js';

const PROTOCOL_NAME = new TextEncoder().encode('Noise_XK_secp256k1_ChaChaPoly_SHA256');
const PROLOGUE = new TextEncoder().encode('lightning');
const VERSION = 0;
const PUBKEY_BYTES = 33;
const TAG_BYTES = 16;
const ACT_ONE_BYTES = 1 + PUBKEY_BYTES + TAG_BYTES; // 50
const ACT_TWO_BYTES = 1 + PUBKEY_BYTES + TAG_BYTES; // 50
const ACT_THREE_BYTES = 1 + PUBKEY_BYTES + TAG_BYTES + TAG_BYTES; // 66
/** Largest plaintext a transport message may carry (BOLT 8: the length prefix is a u16). */
export const MAX_MESSAGE_BYTES = 65535;
const LENGTH_PREFIX_BYTES = 2 + TAG_BYTES; // 18
/** An empty message still carries the length prefix and a body tag. */
const MIN_FRAME_BYTES = LENGTH_PREFIX_BYTES + TAG_BYTES; // 34
/** Each key is rotated once its nonce reaches 1000, i.e. every 500 messages. */
const ROTATE_AT_NONCE = 1000;
const EMPTY = new Uint8Array(0);

export type NoiseErrorCode =
  | 'ACT_BAD_LENGTH'
  | 'ACT_BAD_VERSION'
  | 'ACT_BAD_PUBKEY'
  | 'ACT1_BAD_TAG'
  | 'ACT2_BAD_TAG'
  | 'ACT3_BAD_CIPHERTEXT'
  | 'ACT3_BAD_RS'
  | 'ACT3_BAD_TAG'
  | 'FRAME_TOO_SHORT'
  | 'FRAME_BAD_LENGTH_TAG'
  | 'FRAME_LENGTH_MISMATCH'
  | 'FRAME_BAD_TAG'
  | 'MESSAGE_TOO_LARGE'
  | 'WRONG_STATE'
  | 'BAD_PUBKEY';

/** Bad bytes from the peer, or a call in the wrong order. Messages carry sizes and versions, never key material. */
export class NoiseError extends Error {
  override readonly name = 'NoiseError';
  readonly code: NoiseErrorCode;
  constructor(code: NoiseErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.code = code;
  }
}

/**
 * A static (node) key that can do BOLT 8 ECDH without handing out its secret, so a hardware
 * key can stand in for {@link softwareStaticKey}.
 */
export interface NoiseStaticKey {
  /** 33-byte compressed public key. */
  readonly publicKey: Uint8Array;
  /** SHA256(compressed33(k·P)), 32 bytes; throws NoiseError BAD_PUBKEY if `remotePoint` is not a valid point. */
  ecdh(remotePoint: Uint8Array): Uint8Array;
}

export interface NoiseHandshakeResult {
  /** The peer's 33-byte static key (for the responder: authenticated by Act Three). */
  readonly remoteStatic: Uint8Array;
  /** Encrypts what we send. */
  readonly sender: NoiseCipher;
  /** Decrypts what we receive. */
  readonly receiver: NoiseCipher;
  /** Final chaining key after Act Three (seeds both ciphers' rotation). */
  readonly chainingKey: Uint8Array;
  /** Final handshake hash h; equal on both sides, usable as a session binding. */
  readonly handshakeHash: Uint8Array;
}

/** One intermediate value set of the handshake; for vector tests only (it carries secrets). */
export interface NoiseTraceEvent {
  /** e.g. `init.4`, `act1.initiator.5`: the BOLT 8 step that produced the values. */
  readonly step: string;
  readonly values: Readonly<Record<string, Uint8Array>>;
}
/** Receives every {@link NoiseTraceEvent}. Never pass one in production: it sees the temporary keys. */
export type NoiseTrace = (event: NoiseTraceEvent) => void;

// ---------------------------------------------------------------------------------------------
// Primitives (BOLT 8 "Handshake State" helper functions)

/** HKDF(salt, ikm) with empty info and 64 bytes of output, split in two (RFC 5869 written out). */
function hkdf(salt: Uint8Array, ikm: Uint8Array): [Uint8Array, Uint8Array] {
  const prk = hmacSha256(salt, ikm);
  const out1 = hmacSha256(prk, Uint8Array.of(1));
  const out2 = hmacSha256(prk, concatBytes(out1, Uint8Array.of(2)));
  prk.fill(0);
  return [out1, out2];
}

/** 96-bit nonce: 32 zero bits, then the counter as a little-endian u64 (Noise, not Lightning, byte order). */
function nonceBytes(n: number): Uint8Array {
  const out = new Uint8Array(12);
  // n never exceeds 1000, so the upper half of the u64 stays zero.
  new DataView(out.buffer).setUint32(4, n, true);
  return out;
}

function encryptWithAD(k: Uint8Array, n: number, ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
  return chacha20poly1305(k, nonceBytes(n), ad).encrypt(plaintext);
}

/** The plaintext, or undefined when the tag does not verify. */
function decryptWithAD(k: Uint8Array, n: number, ad: Uint8Array, ciphertext: Uint8Array): Uint8Array | undefined {
  try {
    return chacha20poly1305(k, nonceBytes(n), ad).decrypt(ciphertext);
  } catch {
    return undefined;
  }
}

function ecdh(secret: Uint8Array, remotePoint: Uint8Array): Uint8Array {
  if (!isValidPublicKey(remotePoint)) {
    throw new NoiseError('BAD_PUBKEY', 'remote point is not a valid 33-byte compressed secp256k1 key');
  }
  return sha256(multiplyPoint(remotePoint, secret));
}

/** A secret held in a #private field: absent from JSON, `toString` and `util.inspect`. */
class SecretKey implements NoiseStaticKey {
  readonly #secret: Uint8Array;
  readonly publicKey: Uint8Array;
  constructor(secret: Uint8Array, field: string) {
    if (!(secret instanceof Uint8Array)) throw new TypeError(`"${field}" expected Uint8Array`);
    if (!isValidSecretKey(secret)) throw new RangeError(`"${field}" expected 32 bytes encoding 0 < k < n`);
    this.#secret = Uint8Array.from(secret);
    this.publicKey = publicKeyOf(this.#secret);
  }
  ecdh(remotePoint: Uint8Array): Uint8Array {
    return ecdh(this.#secret, remotePoint);
  }
  /** Best effort: JS cannot promise the bytes leave memory, but we stop holding them. */
  wipe(): void {
    this.#secret.fill(0);
  }
}

/** A {@link NoiseStaticKey} over a secret in memory. The secret is copied and never exposed. */
export function softwareStaticKey(secretKey: Uint8Array): NoiseStaticKey {
  return new SecretKey(secretKey, 'secretKey');
}

function checkLocalStatic(key: NoiseStaticKey): void {
  if (typeof key !== 'object' || key === null || typeof key.ecdh !== 'function' || !isValidPublicKey(key.publicKey)) {
    throw new TypeError('"localStatic" expected a NoiseStaticKey with a valid 33-byte publicKey');
  }
}

// ---------------------------------------------------------------------------------------------
// Handshake

/** ck and h, shared by both roles, with the trace hook. */
class SymmetricState {
  ck: Uint8Array;
  h: Uint8Array;
  readonly #trace: NoiseTrace | undefined;

  /** BOLT 8 "Handshake State Initialization" steps 1-4. */
  constructor(responderStatic: Uint8Array, trace: NoiseTrace | undefined) {
    this.#trace = trace;
    // 1. h = SHA-256(protocolName)
    this.h = sha256(PROTOCOL_NAME);
    this.emit('init.1', { h: this.h });
    // 2. ck = h
    this.ck = Uint8Array.from(this.h);
    this.emit('init.2', { ck: this.ck });
    // 3. h = SHA-256(h || prologue)
    this.mixHash(PROLOGUE, 'init.3');
    // 4. h = SHA-256(h || responder's static public key)
    this.mixHash(responderStatic, 'init.4');
  }

  mixHash(data: Uint8Array, step: string): void {
    this.h = sha256(concatBytes(this.h, data));
    this.emit(step, { h: this.h });
  }

  /** ck, temp_k = HKDF(ck, ikm); returns temp_k. */
  mixKey(ikm: Uint8Array, tempName: string, step: string): Uint8Array {
    const salt = this.ck;
    const [ck, tempK] = hkdf(salt, ikm);
    this.emit(step, { salt, ikm, ck, [tempName]: tempK });
    this.ck = ck;
    salt.fill(0);
    return tempK;
  }

  encrypt(k: Uint8Array, n: number, plaintext: Uint8Array, step: string): Uint8Array {
    const ciphertext = encryptWithAD(k, n, this.h, plaintext);
    this.emit(step, { key: k, nonce: nonceBytes(n), ad: this.h, plaintext, ciphertext });
    return ciphertext;
  }

  decrypt(k: Uint8Array, n: number, ciphertext: Uint8Array, step: string): Uint8Array | undefined {
    const plaintext = decryptWithAD(k, n, this.h, ciphertext);
    const values: Record<string, Uint8Array> = { key: k, nonce: nonceBytes(n), ad: this.h, ciphertext };
    if (plaintext) values.plaintext = plaintext;
    this.emit(step, values);
    return plaintext;
  }

  emit(step: string, values: Record<string, Uint8Array>): void {
    if (!this.#trace) return;
    const copy: Record<string, Uint8Array> = {};
    for (const [name, value] of Object.entries(values)) copy[name] = Uint8Array.from(value);
    this.#trace({ step, values: copy });
  }

  wipe(): void {
    this.ck.fill(0);
    this.h.fill(0);
  }
}

/** Steps 1-3 of receiving Act One or Act Two: exact length, version 0, a valid point. */
function readEphemeralAct(act: Uint8Array, actNumber: 1 | 2): { re: Uint8Array; c: Uint8Array } {
  if (!(act instanceof Uint8Array)) throw new TypeError(`"act${actNumber}" expected Uint8Array`);
  // 1. read exactly 50 bytes: v (1), re (33), c (16)
  const expected = actNumber === 1 ? ACT_ONE_BYTES : ACT_TWO_BYTES;
  if (act.length !== expected) {
    throw new NoiseError('ACT_BAD_LENGTH', `act ${actNumber} is ${act.length} bytes, expected ${expected}`);
  }
  // 2. only version 0 is defined
  if (act[0] !== VERSION) throw new NoiseError('ACT_BAD_VERSION', `act ${actNumber} has unknown version ${act[0]}`);
  const re = act.slice(1, 1 + PUBKEY_BYTES);
  // 3. re must parse as a compressed point
  if (!isValidPublicKey(re)) {
    throw new NoiseError('ACT_BAD_PUBKEY', `act ${actNumber} ephemeral key is not a valid compressed point`);
  }
  return { re, c: act.slice(1 + PUBKEY_BYTES) };
}

function splitResult(
  ss: SymmetricState,
  remoteStatic: Uint8Array,
  role: 'initiator' | 'responder',
): NoiseHandshakeResult {
  // Act Three step 6 (initiator) / 9 (responder): the first half is always initiator→responder.
  const [initiatorKey, responderKey] = hkdf(ss.ck, EMPTY);
  const [sk, rk] = role === 'initiator' ? [initiatorKey, responderKey] : [responderKey, initiatorKey];
  ss.emit(`act3.${role}.split`, { salt: ss.ck, ikm: EMPTY, sk, rk });
  // n = 0 and sck = rck = ck: both ciphers start from the same chaining key.
  const result: NoiseHandshakeResult = {
    remoteStatic: Uint8Array.from(remoteStatic),
    sender: new NoiseCipher(sk, ss.ck),
    receiver: new NoiseCipher(rk, ss.ck),
    chainingKey: Uint8Array.from(ss.ck),
    handshakeHash: Uint8Array.from(ss.h),
  };
  sk.fill(0);
  rk.fill(0);
  return result;
}

type InitiatorStep = 'act1' | 'act3' | 'done' | 'failed';

/**
 * The side that knows the responder's static key in advance (Noise XK). Call `act1()`, send it,
 * pass the reply to `act3()`, send that, then take `result()`.
 *
 * @example
 * const hs = new NoiseInitiator(softwareStaticKey(secret), responderPub);
 * send(hs.act1());
 * send(hs.act3(await receive()));
 * const { sender, receiver } = hs.result();
 */
export class NoiseInitiator {
  readonly #ls: NoiseStaticKey;
  readonly #rs: Uint8Array;
  readonly #e: SecretKey;
  readonly #ss: SymmetricState;
  #step: InitiatorStep = 'act1';
  #result: NoiseHandshakeResult | undefined;

  /**
   * @param remoteStatic the responder's 33-byte node key (invalid → NoiseError BAD_PUBKEY)
   * @param ephemeralSecret tests only; by default a fresh random key per handshake
   * @param trace tests only; sees intermediate secrets
   */
  constructor(localStatic: NoiseStaticKey, remoteStatic: Uint8Array, ephemeralSecret?: Uint8Array, trace?: NoiseTrace) {
    checkLocalStatic(localStatic);
    if (!(remoteStatic instanceof Uint8Array)) throw new TypeError('"remoteStatic" expected Uint8Array');
    if (!isValidPublicKey(remoteStatic)) {
      throw new NoiseError('BAD_PUBKEY', 'remoteStatic is not a valid 33-byte compressed secp256k1 key');
    }
    this.#ls = localStatic;
    this.#rs = Uint8Array.from(remoteStatic);
    // Act One 1. e = generateKey(): done up front so a bad injected key fails at construction.
    this.#e = new SecretKey(ephemeralSecret ?? randomSecretKey(), 'ephemeralSecret');
    this.#ss = new SymmetricState(this.#rs, trace);
  }

  /** Act One `-> e, es`: the 50 bytes to send. */
  act1(): Uint8Array {
    this.#expect('act1');
    return this.#run(() => {
      const ss = this.#ss;
      const ePub = this.#e.publicKey;
      ss.emit('act1.initiator.1', { e_pub: ePub });
      // 2. h = SHA-256(h || e.pub)
      ss.mixHash(ePub, 'act1.initiator.2');
      // 3. es = ECDH(e.priv, rs)
      const es = this.#e.ecdh(this.#rs);
      ss.emit('act1.initiator.3', { es });
      // 4. ck, temp_k1 = HKDF(ck, es)
      const tempK1 = ss.mixKey(es, 'temp_k1', 'act1.initiator.4');
      // 5. c = encryptWithAD(temp_k1, 0, h, zero)
      const c = ss.encrypt(tempK1, 0, EMPTY, 'act1.initiator.5');
      tempK1.fill(0);
      // 6. h = SHA-256(h || c)
      ss.mixHash(c, 'act1.initiator.6');
      // 7. send 0 || e.pub || c
      this.#step = 'act3';
      return concatBytes(Uint8Array.of(VERSION), ePub, c);
    });
  }

  /** Processes Act Two `<- e, ee` and returns Act Three `-> s, se` (66 bytes). */
  act3(act2: Uint8Array): Uint8Array {
    this.#expect('act3');
    return this.#run(() => {
      const ss = this.#ss;
      // Act Two (initiator) 1.-3. exact length, version, re a valid point
      const { re, c } = readEphemeralAct(act2, 2);
      ss.emit('act2.initiator.3', { re });
      // 4. h = SHA-256(h || re)
      ss.mixHash(re, 'act2.initiator.4');
      // 5. ee = ECDH(e.priv, re)
      const ee = this.#e.ecdh(re);
      ss.emit('act2.initiator.5', { ee });
      // 6. ck, temp_k2 = HKDF(ck, ee)
      const tempK2 = ss.mixKey(ee, 'temp_k2', 'act2.initiator.6');
      // 7. the tag proves the responder holds the static key we dialled
      if (!ss.decrypt(tempK2, 0, c, 'act2.initiator.7')) {
        throw new NoiseError('ACT2_BAD_TAG', 'act 2 tag does not verify');
      }
      // 8. h = SHA-256(h || c)
      ss.mixHash(c, 'act2.initiator.8');

      // Act Three (initiator) 1. c = encryptWithAD(temp_k2, 1, h, s.pub): nonce 1, temp_k2 reused
      const c3 = ss.encrypt(tempK2, 1, this.#ls.publicKey, 'act3.initiator.1');
      tempK2.fill(0);
      // 2. h = SHA-256(h || c)
      ss.mixHash(c3, 'act3.initiator.2');
      // 3. se = ECDH(s.priv, re)
      const se = this.#ls.ecdh(re);
      ss.emit('act3.initiator.3', { se });
      // 4. ck, temp_k3 = HKDF(ck, se)
      const tempK3 = ss.mixKey(se, 'temp_k3', 'act3.initiator.4');
      // 5. t = encryptWithAD(temp_k3, 0, h, zero)
      const t = ss.encrypt(tempK3, 0, EMPTY, 'act3.initiator.5');
      tempK3.fill(0);
      // 6.-8. sk, rk = HKDF(ck, zero); sn = rn = 0; sck = rck = ck
      this.#result = splitResult(ss, this.#rs, 'initiator');
      this.#step = 'done';
      this.#forget();
      // 9. send 0 || c || t
      return concatBytes(Uint8Array.of(VERSION), c3, t);
    });
  }

  /** Keys and peer identity; only after `act3()`. Always the same object: the ciphers are stateful. */
  result(): NoiseHandshakeResult {
    if (this.#step !== 'done' || !this.#result) throw new NoiseError('WRONG_STATE', 'handshake is not complete');
    return this.#result;
  }

  #expect(step: InitiatorStep): void {
    if (this.#step !== step) throw new NoiseError('WRONG_STATE', `initiator expected ${this.#step}, not ${step}`);
  }

  /** A failed step ends the handshake: BOLT 8 says to close the connection. */
  #run<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      this.#step = 'failed';
      this.#forget();
      throw err;
    }
  }

  #forget(): void {
    this.#e.wipe();
    this.#ss.wipe();
  }
}

type ResponderStep = 'act2' | 'finish' | 'done' | 'failed';

/**
 * The side whose static key the initiator already knows. Pass Act One to `act2()`, send the
 * reply, pass Act Three to `finish()`.
 *
 * @example
 * const hs = new NoiseResponder(softwareStaticKey(nodeSecret));
 * send(hs.act2(await receive()));
 * const { remoteStatic, sender, receiver } = hs.finish(await receive());
 */
export class NoiseResponder {
  readonly #ls: NoiseStaticKey;
  readonly #e: SecretKey;
  readonly #ss: SymmetricState;
  #step: ResponderStep = 'act2';
  #tempK2: Uint8Array | undefined;

  /**
   * @param ephemeralSecret tests only; by default a fresh random key per handshake
   * @param trace tests only; sees intermediate secrets
   */
  constructor(localStatic: NoiseStaticKey, ephemeralSecret?: Uint8Array, trace?: NoiseTrace) {
    checkLocalStatic(localStatic);
    this.#ls = localStatic;
    // Act Two 1. e = generateKey(), taken up front like the initiator's.
    this.#e = new SecretKey(ephemeralSecret ?? randomSecretKey(), 'ephemeralSecret');
    this.#ss = new SymmetricState(localStatic.publicKey, trace);
  }

  /** Processes Act One `-> e, es` and returns Act Two `<- e, ee` (50 bytes). */
  act2(act1: Uint8Array): Uint8Array {
    this.#expect('act2');
    return this.#run(() => {
      const ss = this.#ss;
      // Act One (responder) 1.-3. exact length, version, re a valid point
      const { re, c } = readEphemeralAct(act1, 1);
      ss.emit('act1.responder.3', { re });
      // 4. h = SHA-256(h || re)
      ss.mixHash(re, 'act1.responder.4');
      // 5. es = ECDH(s.priv, re)
      const es = this.#ls.ecdh(re);
      ss.emit('act1.responder.5', { es });
      // 6. ck, temp_k1 = HKDF(ck, es)
      const tempK1 = ss.mixKey(es, 'temp_k1', 'act1.responder.6');
      // 7. a bad tag means the initiator does not know our static key
      const ok = ss.decrypt(tempK1, 0, c, 'act1.responder.7');
      tempK1.fill(0);
      if (!ok) throw new NoiseError('ACT1_BAD_TAG', 'act 1 tag does not verify');
      // 8. h = SHA-256(h || c)
      ss.mixHash(c, 'act1.responder.8');

      // Act Two (responder) 1. e = generateKey() (made in the constructor)
      const ePub = this.#e.publicKey;
      ss.emit('act2.responder.1', { e_pub: ePub });
      // 2. h = SHA-256(h || e.pub)
      ss.mixHash(ePub, 'act2.responder.2');
      // 3. ee = ECDH(e.priv, re)
      const ee = this.#e.ecdh(re);
      ss.emit('act2.responder.3', { ee });
      // 4. ck, temp_k2 = HKDF(ck, ee)
      const tempK2 = ss.mixKey(ee, 'temp_k2', 'act2.responder.4');
      // 5. c = encryptWithAD(temp_k2, 0, h, zero)
      const c2 = ss.encrypt(tempK2, 0, EMPTY, 'act2.responder.5');
      // 6. h = SHA-256(h || c)
      ss.mixHash(c2, 'act2.responder.6');
      // temp_k2 decrypts Act Three's c (nonce 1); keep it until then.
      this.#tempK2 = tempK2;
      this.#step = 'finish';
      // 7. send 0 || e.pub || c
      return concatBytes(Uint8Array.of(VERSION), ePub, c2);
    });
  }

  /** Processes Act Three `-> s, se`: authenticates the initiator and returns the session keys. */
  finish(act3: Uint8Array): NoiseHandshakeResult {
    this.#expect('finish');
    return this.#run(() => {
      const ss = this.#ss;
      const tempK2 = this.#tempK2!;
      if (!(act3 instanceof Uint8Array)) throw new TypeError('"act3" expected Uint8Array');
      // Act Three (responder) 1. read exactly 66 bytes: v (1), c (49), t (16)
      if (act3.length !== ACT_THREE_BYTES) {
        throw new NoiseError('ACT_BAD_LENGTH', `act 3 is ${act3.length} bytes, expected ${ACT_THREE_BYTES}`);
      }
      // 2. only version 0 is defined
      if (act3[0] !== VERSION) throw new NoiseError('ACT_BAD_VERSION', `act 3 has unknown version ${act3[0]}`);
      const c = act3.slice(1, 1 + PUBKEY_BYTES + TAG_BYTES);
      const t = act3.slice(1 + PUBKEY_BYTES + TAG_BYTES);
      // 3. rs = decryptWithAD(temp_k2, 1, h, c)
      const rs = ss.decrypt(tempK2, 1, c, 'act3.responder.3');
      if (!rs) throw new NoiseError('ACT3_BAD_CIPHERTEXT', 'act 3 static key ciphertext does not verify');
      ss.emit('act3.responder.3.rs', { rs });
      // 4. rs must be a valid point (vector "act3 bad rs")
      if (!isValidPublicKey(rs)) {
        throw new NoiseError('ACT3_BAD_RS', 'act 3 static key is not a valid compressed point');
      }
      // 5. h = SHA-256(h || c)
      ss.mixHash(c, 'act3.responder.5');
      // 6. se = ECDH(e.priv, rs)
      const se = this.#e.ecdh(rs);
      ss.emit('act3.responder.6', { se });
      // 7. ck, temp_k3 = HKDF(ck, se)
      const tempK3 = ss.mixKey(se, 'temp_k3', 'act3.responder.7');
      // 8. t proves the initiator holds the static key it just sent
      const ok = ss.decrypt(tempK3, 0, t, 'act3.responder.8');
      tempK3.fill(0);
      if (!ok) throw new NoiseError('ACT3_BAD_TAG', 'act 3 tag does not verify');
      // 9.-11. rk, sk = HKDF(ck, zero); rn = sn = 0; rck = sck = ck
      const result = splitResult(ss, rs, 'responder');
      this.#step = 'done';
      this.#forget();
      return result;
    });
  }

  #expect(step: ResponderStep): void {
    if (this.#step !== step) throw new NoiseError('WRONG_STATE', `responder expected ${this.#step}, not ${step}`);
  }

  /** A failed step ends the handshake: BOLT 8 says to close the connection. */
  #run<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      this.#step = 'failed';
      this.#forget();
      throw err;
    }
  }

  #forget(): void {
    this.#e.wipe();
    this.#ss.wipe();
    this.#tempK2?.fill(0);
    this.#tempK2 = undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Transport

/**
 * One direction of a BOLT 8 session: key k, chaining key ck, nonce n. A frame is
 * `encryptWithAD(k, n, zero, u16be(len)) || encryptWithAD(k, n+1, zero, m)`; the key rotates
 * (`ck, k = HKDF(ck, k)`, n = 0) as soon as n reaches 1000, i.e. between messages.
 *
 * Old keys are dropped at rotation and never retried: keeping them would undo the forward
 * secrecy rotation buys.
 *
 * @example
 * const frame = result.sender.encrypt(new TextEncoder().encode('hello')); // 39 bytes
 * peer.receiver.decrypt(frame); // 'hello'
 */
export class NoiseCipher {
  #k: Uint8Array;
  #ck: Uint8Array;
  #n = 0;
  #count = 0;

  /** Normally made by the handshake; public so the spec's message vectors can seed it. */
  constructor(key: Uint8Array, chainingKey: Uint8Array) {
    if (!(key instanceof Uint8Array) || key.length !== 32) throw new TypeError('"key" expected 32-byte Uint8Array');
    if (!(chainingKey instanceof Uint8Array) || chainingKey.length !== 32) {
      throw new TypeError('"chainingKey" expected 32-byte Uint8Array');
    }
    this.#k = Uint8Array.from(key);
    this.#ck = Uint8Array.from(chainingKey);
  }

  /** Successful encrypt or decrypt calls so far (one per message, across rotations). */
  get messagesProcessed(): number {
    return this.#count;
  }

  /** Frames `message` as `lc || c`: 18 + message.length + 16 bytes. */
  encrypt(message: Uint8Array): Uint8Array {
    if (!(message instanceof Uint8Array)) throw new TypeError('"message" expected Uint8Array');
    if (message.length > MAX_MESSAGE_BYTES) {
      throw new NoiseError(
        'MESSAGE_TOO_LARGE',
        `message is ${message.length} bytes, the maximum is ${MAX_MESSAGE_BYTES}`,
      );
    }
    // The length is big-endian although the nonce is little-endian.
    const length = Uint8Array.of(message.length >>> 8, message.length & 0xff);
    const lc = encryptWithAD(this.#k, this.#n, EMPTY, length);
    const c = encryptWithAD(this.#k, this.#n + 1, EMPTY, message);
    this.#advance();
    return concatBytes(lc, c);
  }

  /**
   * Opens one whole frame, which must be exactly 18 + l + 16 bytes (one frame per bus message).
   * Transactional: on any failure it throws and k, ck and n are untouched, so a duplicated or
   * forged frame costs nothing and the next genuine frame still decrypts.
   */
  decrypt(frame: Uint8Array): Uint8Array {
    if (!(frame instanceof Uint8Array)) throw new TypeError('"frame" expected Uint8Array');
    if (frame.length < MIN_FRAME_BYTES) {
      throw new NoiseError('FRAME_TOO_SHORT', `frame is ${frame.length} bytes, the minimum is ${MIN_FRAME_BYTES}`);
    }
    const length = decryptWithAD(this.#k, this.#n, EMPTY, frame.subarray(0, LENGTH_PREFIX_BYTES));
    if (!length) throw new NoiseError('FRAME_BAD_LENGTH_TAG', 'length prefix tag does not verify');
    const l = (length[0]! << 8) | length[1]!;
    if (frame.length !== LENGTH_PREFIX_BYTES + l + TAG_BYTES) {
      throw new NoiseError(
        'FRAME_LENGTH_MISMATCH',
        `frame is ${frame.length} bytes but its length prefix says ${LENGTH_PREFIX_BYTES + l + TAG_BYTES}`,
      );
    }
    const message = decryptWithAD(this.#k, this.#n + 1, EMPTY, frame.subarray(LENGTH_PREFIX_BYTES));
    if (!message) throw new NoiseError('FRAME_BAD_TAG', 'message body tag does not verify');
    this.#advance();
    return message;
  }

  /** Commits one message: two nonces used, then rotate eagerly so the old key is gone at once. */
  #advance(): void {
    this.#n += 2;
    this.#count += 1;
    if (this.#n >= ROTATE_AT_NONCE) {
      // Key Rotation 1. ck', k' = HKDF(ck, k)  2. n = 0  3. k = k', ck = ck'
      const [ck, k] = hkdf(this.#ck, this.#k);
      this.#k.fill(0);
      this.#ck.fill(0);
      this.#k = k;
      this.#ck = ck;
      this.#n = 0;
    }
  }
}
