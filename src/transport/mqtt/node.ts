/**
 * A Trickle node on MQTT in one call: signs the node's online status and its Last Will
 * (offline), builds the MQTT transport and starts a Messenger on it.
 *
 * @example
 *   const broker = await startEmbeddedBroker({ port: 0 });
 *   const node = await startMqttMessenger({ url: broker.url, identity: randomIdentity() });
 */
import { Messenger, type MessengerOptions } from '../../node/messenger.js';
import type { NodeIdentity } from '../../session/identity.js';
import { signNodeStatus } from '../../wire/index.js';
import type { MqttTransportOptions } from './options.js';
import { MqttTransport } from './transport.js';

export interface MqttMessengerOptions
  extends Omit<MqttTransportOptions, 'localNodeId' | 'onlineStatus' | 'offlineStatus'>,
    Omit<MessengerOptions, 'transport'> {
  identity: NodeIdentity;
}

export async function startMqttMessenger(options: MqttMessengerOptions): Promise<Messenger> {
  const { identity, clock, wallClockSec, session, maxMessageBytes, holdInbound, presence: presenceScope, ...mqtt } = options;
  const clockSec = wallClockSec ?? (() => Math.floor(Date.now() / 1000));
  // [T-3] Each connection signs both statuses with one timestamp, strictly newer than the
  // previous connection's, so a reconnect's "online" beats the last Will's "offline" even
  // within the same second, and that connection's Will (equal timestamp, offline wins) beats it.
  let lastTimestamp = 0;
  const presence = () => {
    lastTimestamp = Math.max(clockSec(), lastTimestamp + 1);
    const sign = (status: 'online' | 'offline') =>
      signNodeStatus({ nodeId: identity.publicKey, status, timestamp: lastTimestamp }, identity);
    return { onlineStatus: sign('online'), offlineStatus: sign('offline') };
  };
  const transport = new MqttTransport({
    ...mqtt,
    localNodeId: identity.nodeId,
    ...presence(),
    refreshPresence: presence,
  });
  return Messenger.start({
    identity,
    transport,
    ...(clock !== undefined ? { clock } : {}),
    ...(wallClockSec !== undefined ? { wallClockSec } : {}),
    ...(session !== undefined ? { session } : {}),
    ...(maxMessageBytes !== undefined ? { maxMessageBytes } : {}),
    ...(holdInbound !== undefined ? { holdInbound } : {}),
    ...(presenceScope !== undefined ? { presence: presenceScope } : {}),
  });
}
