/**
 * Options of the MQTT transport, checked and turned into mqtt.js settings: the persistent
 * session, the Last Will, QoS and re-subscription policy this adapter relies on, plus the
 * reconnect back-off curve. Kept apart from the connection logic in transport.ts.
 */
import { createHash } from 'node:crypto';
import type { IClientOptions } from 'mqtt';
import { isNodeId, statusTopic, type NodeId } from '../port.js';

/** Largest inbox payload accepted: a maximal BOLT 8 message (65,535 + 34 bytes) plus a small header. */
export const MAX_FRAME_BYTES = 70_000;
/** Largest retained announcement or status accepted. */
export const MAX_PRESENCE_BYTES = 8 * 1024;

export interface ReconnectPolicy {
  /** Wait before the first retry after the link drops. Default 250 ms. */
  initialDelayMs: number;
  /** Ceiling of the back-off. Default 30 s. */
  maxDelayMs: number;
  /** Growth per failed attempt. Default 2. */
  factor: number;
  /** Fraction (0..1) of each delay taken off at random so a fleet does not retry in step. Default 0.2. */
  jitter: number;
}

/** TLS settings handed to mqtt.js (and on to node:tls) unchanged. */
export type MqttTlsOptions = Pick<IClientOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized' | 'servername'>;

export interface MqttTransportOptions {
  /** Broker URL: mqtt://, mqtts://, ws://, wss:// (whatever mqtt.js accepts). */
  url: string;
  localNodeId: NodeId;
  /** 4 = MQTT 3.1.1, 5 = MQTT 5. Default 4: every broker speaks it, the embedded aedes only it. */
  protocolVersion?: 4 | 5;
  /** Fixed client id; default 'tk' + 20 hex chars of SHA-256(node id), within the 23 every broker must accept [MQTT-3.1.3-5]. */
  clientId?: string;
  username?: string;
  password?: string;
  tls?: MqttTlsOptions;
  /** Retained on our status topic on every connect (already signed by the node layer). */
  onlineStatus: Uint8Array;
  /** Our Last Will, and what stop() publishes (already signed by the node layer). */
  offlineStatus: Uint8Array;
  /**
   * Called before every reconnection attempt for freshly signed statuses, so the online status
   * of a new connection is newer than the Last Will of the previous one.
   */
  refreshPresence?: () => { onlineStatus: Uint8Array; offlineStatus: Uint8Array };
  reconnect?: Partial<ReconnectPolicy>;
  /** How long one connection attempt may wait for CONNACK. Default 10 s. */
  connectTimeoutMs?: number;
  /** MQTT 5 session expiry; the broker keeps our session (and queued inbox frames) this long. Default 1 day. */
  sessionExpirySec?: number;
  /** Frames accepted by sendFrame while the link is down before further ones are dropped. Default 1000. */
  maxQueuedFrames?: number;
  /** Bound on each step of stop() (publishing offline, disconnecting). Default 5 s. */
  stopTimeoutMs?: number;
  /** Extra mqtt.js options (keepalive, ...). The settings this adapter depends on override them. */
  mqttOptions?: IClientOptions;
}

/**
 * Delay before retry number `attempt` (0 = first retry after a drop):
 * min(max, initial · factor^attempt), less up to `jitter` of itself at random.
 */
export function reconnectDelayMs(attempt: number, policy: ReconnectPolicy, random: () => number = uniformRandom): number {
  const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.factor ** attempt);
  return Math.max(1, Math.round(base * (1 - policy.jitter * random())));
}

/** A uniform number in [0, 1) from crypto.getRandomValues (the project's only randomness source). */
function uniformRandom(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0]! / 2 ** 32;
}

/** The default client id for a node: short enough for any broker, stable across restarts. */
export function defaultClientId(node: NodeId): string {
  return 'tk' + createHash('sha256').update(node).digest('hex').slice(0, 20);
}

/** Checked options, and the mqtt.js options every connection of this transport uses. */
export interface ResolvedOptions {
  url: string;
  localNodeId: NodeId;
  online: Uint8Array;
  offline: Uint8Array;
  policy: ReconnectPolicy;
  maxQueuedFrames: number;
  stopTimeoutMs: number;
  clientOptions: IClientOptions;
}

/** Validate `options` (TypeError/RangeError naming the field) and build the mqtt.js options. */
export function resolveOptions(options: MqttTransportOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw new TypeError('"options" expected an object');
  const { url, localNodeId, onlineStatus, offlineStatus } = options;
  if (typeof url !== 'string' || url === '') throw new TypeError('"url" expected a non-empty string');
  if (!isNodeId(localNodeId)) throw new TypeError('"localNodeId" expected a node id (66 lowercase hex characters)');
  for (const [name, value] of [['onlineStatus', onlineStatus], ['offlineStatus', offlineStatus]] as const) {
    if (!(value instanceof Uint8Array)) throw new TypeError(`"${name}" expected Uint8Array`);
    if (value.byteLength > MAX_PRESENCE_BYTES) throw new RangeError(`"${name}" exceeds ${MAX_PRESENCE_BYTES} bytes`);
  }
  const protocolVersion = options.protocolVersion ?? 4;
  if (protocolVersion !== 4 && protocolVersion !== 5) throw new RangeError('"protocolVersion" expected 4 or 5');
  const clientId = options.clientId ?? defaultClientId(localNodeId);
  if (typeof clientId !== 'string' || clientId === '') throw new TypeError('"clientId" expected a non-empty string');

  const policy: ReconnectPolicy = {
    initialDelayMs: positive('reconnect.initialDelayMs', options.reconnect?.initialDelayMs ?? 250),
    maxDelayMs: positive('reconnect.maxDelayMs', options.reconnect?.maxDelayMs ?? 30_000),
    factor: options.reconnect?.factor ?? 2,
    jitter: options.reconnect?.jitter ?? 0.2,
  };
  if (!(policy.factor >= 1)) throw new RangeError('"reconnect.factor" expected a number ≥ 1');
  if (!(policy.jitter >= 0 && policy.jitter <= 1)) throw new RangeError('"reconnect.jitter" expected 0..1');
  const connectTimeoutMs = positive('connectTimeoutMs', options.connectTimeoutMs ?? 10_000);
  const sessionExpirySec = positive('sessionExpirySec', options.sessionExpirySec ?? 86_400);
  // Copies: the caller may reuse its arrays; these bytes are republished on every connect.
  const online = onlineStatus.slice();
  const offline = offlineStatus.slice();

  const extra = options.mqttOptions ?? {};
  const clientOptions: IClientOptions = {
    ...extra,
    ...options.tls,
    protocolVersion,
    clientId,
    // A persistent session: the broker keeps our subscriptions and queues QoS 1 inbox frames
    // while we are away [MQTT-3.1.2-4], [MQTT-3.1.2-5]; MQTT 5 calls it Clean Start 0 and
    // needs a Session Expiry Interval, else the session ends with the connection (§3.1.2.11.2).
    clean: false,
    // mqtt.js retries on a fixed interval; the transport rewrites it before each attempt.
    reconnectPeriod: reconnectDelayMs(0, policy),
    // Keep retrying after a refused CONNACK once running (a broker restarting may answer
    // "server unavailable"); start() still fails fast on a refusal.
    reconnectOnConnackError: true,
    connectTimeout: connectTimeoutMs,
    // The transport re-subscribes itself from CONNACK's session-present flag.
    resubscribe: false,
    // Only QoS 1 is queued while offline; there is no QoS 0 traffic to queue.
    queueQoSZero: false,
    // The broker publishes this if the network connection closes without a DISCONNECT
    // [MQTT-3.1.2-8]; retained, so late subscribers learn we are gone [MQTT-3.1.2-17].
    will: { topic: statusTopic(localNodeId), payload: Buffer.from(offline), qos: 1, retain: true },
  };
  if (options.username !== undefined) clientOptions.username = options.username;
  if (options.password !== undefined) clientOptions.password = options.password;
  if (protocolVersion === 5) {
    clientOptions.properties = {
      ...extra.properties,
      sessionExpiryInterval: sessionExpirySec,
      // Ask the broker not to send us anything much bigger than a frame [MQTT-3.1.2-24]; it
      // discards such packets itself. What gets through is still checked by the transport.
      maximumPacketSize: 2 * MAX_FRAME_BYTES,
    };
  }
  return {
    url,
    localNodeId,
    online,
    offline,
    policy,
    maxQueuedFrames: nonNegativeInt('maxQueuedFrames', options.maxQueuedFrames ?? 1000),
    stopTimeoutMs: positive('stopTimeoutMs', options.stopTimeoutMs ?? 5000),
    clientOptions,
  };
}

function positive(name: string, value: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`"${name}" expected a positive number`);
  }
  return value;
}

function nonNegativeInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0) throw new RangeError(`"${name}" expected a non-negative integer`);
  return value;
}
