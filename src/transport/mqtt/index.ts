/**
 * `trickle/mqtt`: the MQTT adapter of the Transport port and an embedded broker. Kept behind
 * its own subpath export so that importing the core never loads mqtt.js or aedes.
 */
export { MqttTransport, type MqttTransportStats } from './transport.js';
export {
  MAX_FRAME_BYTES,
  MAX_PRESENCE_BYTES,
  defaultClientId,
  reconnectDelayMs,
  type MqttTlsOptions,
  type MqttTransportOptions,
  type ReconnectPolicy,
} from './options.js';
export { startEmbeddedBroker, type EmbeddedBroker, type EmbeddedBrokerOptions } from './broker.js';
export { startMqttMessenger, type MqttMessengerOptions } from './node.js';
