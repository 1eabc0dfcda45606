/**
 * USB identity of the Trickle key (devices/trickle-key.md). 0x1209 is pid.codes, the open-source vendor
 * id; 0x0001 is its test product id, used until the project has a product id of its own. The key's one
 * HID interface is vendor-defined (usage page 0xFF00, usage 0x01), as FIDO keys use 0xF1D0.
 */
export const TRICKLE_KEY_VENDOR_ID = 0x1209;
export const TRICKLE_KEY_PRODUCT_ID = 0x0001;
export const TRICKLE_KEY_USAGE_PAGE = 0xff00;
export const TRICKLE_KEY_USAGE = 0x01;
