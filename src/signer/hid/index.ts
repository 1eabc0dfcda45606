/**
 * `trickle/hid`: the Trickle key on the Signer port. HidSigner over a HidConnector: NodeHidConnector for
 * the USB key (node-hid, loaded only when connect() is first called) or SocketHidConnector for the
 * emulator (firmware-bridge/emulator.ts). The protocol is firmware-bridge/PROTOCOL.md.
 *
 * @example
 *   const signer = await HidSigner.connect({
 *     connector: new NodeHidConnector({ vendorId: TRICKLE_KEY_VENDOR_ID, productId: TRICKLE_KEY_PRODUCT_ID }),
 *     hostSigner: SoftwareSigner.fromSeed(seed), // wallet and identity keys stay on the host
 *   });
 */
export { HidSigner, KeyRefusedError, type HidSignerOptions, type HidSignerStatus } from './signer.js';
export { SocketHidConnector, type HidConnector, type HidConnection, type HidTransport } from './transport.js';
export { NodeHidConnector, type NodeHidConnectorOptions } from './node-hid.js';
export { HidError, type HidErrorCode } from './errors.js';
export { TRICKLE_KEY_PRODUCT_ID, TRICKLE_KEY_USAGE, TRICKLE_KEY_USAGE_PAGE, TRICKLE_KEY_VENDOR_ID } from './ids.js';
export type { KeyPolicy, ChannelStateResponse, InfoResponse } from './commands.js';
