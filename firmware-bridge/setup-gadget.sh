#!/usr/bin/env bash
# Makes a Raspberry Pi Zero (2 W) show up on its USB port as the Trickle key: a Linux USB gadget (configfs,
# libcomposite) with one vendor-defined HID interface of 64-byte reports, the USB ids the host looks for
# (src/signer/hid/ids.ts, devices/trickle-key.md) and the key's serial as the USB serial string, so a host
# can tell keys apart before opening them. firmware-bridge/gadget.ts then serves /dev/hidg0.
#
# Run as root on Raspberry Pi OS, after dtoverlay=dwc2 (config.txt) and modules-load=dwc2 (cmdline.txt):
#
#   setup-gadget.sh [--serial S] [--state DIR] [--repo DIR]   create (or rebind) the gadget
#   setup-gadget.sh --remove                                  unbind and tear it down
#
# Without --serial the key's serial is read with `gadget.ts --print-serial` from the key's state (which is
# created then if there is none). Idempotent: with the gadget already there it is rebound and the script
# exits 0. NODE overrides the node binary.
set -euo pipefail

GADGET_NAME=trickle-key
CONFIGFS=/sys/kernel/config
GADGET="$CONFIGFS/usb_gadget/$GADGET_NAME"
FUNCTION=hid.usb0
CONFIG=c.1

VENDOR_ID=0x1209     # pid.codes, the open-source vendor id
PRODUCT_ID=0x0001    # pid.codes test PID, until the project has its own
DEVICE_BCD=0x0010    # device release 0.1.0 (FIRMWARE_VERSION in core/key.ts), BCD
USB_BCD=0x0200       # USB 2.0

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$SCRIPT_DIR")"
STATE_DIR=/var/lib/trickle-key
SERIAL=""
REMOVE=0

usage() {
  echo "usage: $0 [--serial S] [--state DIR] [--repo DIR] | --remove" >&2
  exit 2
}

die() {
  echo "setup-gadget: $*" >&2
  exit 1
}

log() {
  echo "setup-gadget: $*" >&2
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --serial) [[ $# -ge 2 ]] || usage; SERIAL="$2"; shift 2 ;;
    --state) [[ $# -ge 2 ]] || usage; STATE_DIR="$2"; shift 2 ;;
    --repo) [[ $# -ge 2 ]] || usage; REPO="$2"; shift 2 ;;
    --remove) REMOVE=1; shift ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done

[[ $EUID -eq 0 ]] || die "run as root (configfs and the UDC are root's)"

# Unbinds the gadget from its UDC, if it is bound.
unbind() {
  if [[ -e "$GADGET/UDC" && -n "$(cat "$GADGET/UDC")" ]]; then
    echo "" > "$GADGET/UDC"
  fi
}

# Binds the gadget to the first USB device controller (the Pi Zero has one: the dwc2 OTG port).
bind() {
  local udc
  udc="$(ls /sys/class/udc 2>/dev/null | head -n 1 || true)"
  [[ -n "$udc" ]] || die "no USB device controller in /sys/class/udc: is dtoverlay=dwc2 in config.txt and dwc2 loaded?"
  echo "$udc" > "$GADGET/UDC"
  log "bound to $udc"
}

remove() {
  if [[ ! -d "$GADGET" ]]; then
    log "no gadget $GADGET_NAME: nothing to remove"
    return 0
  fi
  unbind
  # configfs is torn down in the reverse order of creation: links, then strings, configs, functions.
  [[ -L "$GADGET/configs/$CONFIG/$FUNCTION" ]] && rm "$GADGET/configs/$CONFIG/$FUNCTION"
  [[ -d "$GADGET/configs/$CONFIG/strings/0x409" ]] && rmdir "$GADGET/configs/$CONFIG/strings/0x409"
  [[ -d "$GADGET/configs/$CONFIG" ]] && rmdir "$GADGET/configs/$CONFIG"
  [[ -d "$GADGET/functions/$FUNCTION" ]] && rmdir "$GADGET/functions/$FUNCTION"
  [[ -d "$GADGET/strings/0x409" ]] && rmdir "$GADGET/strings/0x409"
  rmdir "$GADGET"
  log "removed gadget $GADGET_NAME"
}

# The key's serial from its state: the compiled runner when there is one (npm ci --omit=dev has no tsx),
# else the TypeScript source through tsx.
read_serial() {
  local node="${NODE:-node}"
  if [[ -f "$REPO/dist/firmware-bridge/gadget.js" ]]; then
    "$node" "$REPO/dist/firmware-bridge/gadget.js" --print-serial --state "$STATE_DIR"
  else
    (cd "$REPO" && "$node" --import tsx firmware-bridge/gadget.ts --print-serial --state "$STATE_DIR")
  fi
}

if [[ $REMOVE -eq 1 ]]; then
  remove
  exit 0
fi

modprobe libcomposite
if ! mountpoint -q "$CONFIGFS"; then
  mount -t configfs none "$CONFIGFS"
fi

if [[ -d "$GADGET" ]]; then
  # Already set up (a re-run, or the service restarting): bind it again, to whatever UDC is there now.
  log "gadget $GADGET_NAME exists: rebinding"
  unbind
  bind
  exit 0
fi

if [[ -z "$SERIAL" ]]; then
  SERIAL="$(read_serial)" || die "cannot read the key's serial from $STATE_DIR"
fi
# A USB string descriptor, and the key's serial is 16 hex digits: refuse anything else.
[[ "$SERIAL" =~ ^[A-Za-z0-9._-]{1,64}$ ]] || die "bad serial: '$SERIAL'"

mkdir "$GADGET"
echo "$VENDOR_ID" > "$GADGET/idVendor"
echo "$PRODUCT_ID" > "$GADGET/idProduct"
echo "$DEVICE_BCD" > "$GADGET/bcdDevice"
echo "$USB_BCD" > "$GADGET/bcdUSB"

mkdir "$GADGET/strings/0x409"   # US English
echo "Trickle" > "$GADGET/strings/0x409/manufacturer"
echo "Trickle key" > "$GADGET/strings/0x409/product"
echo "$SERIAL" > "$GADGET/strings/0x409/serialnumber"

mkdir "$GADGET/configs/$CONFIG"
mkdir "$GADGET/configs/$CONFIG/strings/0x409"
echo "Trickle key" > "$GADGET/configs/$CONFIG/strings/0x409/configuration"
echo 100 > "$GADGET/configs/$CONFIG/MaxPower"   # mA, from the bus

mkdir "$GADGET/functions/$FUNCTION"
echo 0 > "$GADGET/functions/$FUNCTION/protocol"        # no boot protocol (not a keyboard or mouse)
echo 0 > "$GADGET/functions/$FUNCTION/subclass"        # no boot interface subclass
echo 64 > "$GADGET/functions/$FUNCTION/report_length"  # 64-byte reports, as in PROTOCOL.md §1

# The report descriptor: one vendor-defined collection with a 64-byte input report (key to host) and a
# 64-byte output report (host to key), no report ids. The host finds the key by this usage page and usage.
desc=''
desc+='\x06\x00\xff'   # Usage Page (Vendor Defined 0xFF00)
desc+='\x09\x01'       # Usage (0x01)
desc+='\xa1\x01'       # Collection (Application)
desc+='\x09\x20'       #   Usage (0x20): input report data
desc+='\x15\x00'       #   Logical Minimum (0)
desc+='\x26\xff\x00'   #   Logical Maximum (255)
desc+='\x75\x08'       #   Report Size (8 bits)
desc+='\x95\x40'       #   Report Count (64)
desc+='\x81\x02'       #   Input (Data, Variable, Absolute)
desc+='\x09\x21'       #   Usage (0x21): output report data
desc+='\x15\x00'       #   Logical Minimum (0)
desc+='\x26\xff\x00'   #   Logical Maximum (255)
desc+='\x75\x08'       #   Report Size (8 bits)
desc+='\x95\x40'       #   Report Count (64)
desc+='\x91\x02'       #   Output (Data, Variable, Absolute)
desc+='\xc0'           # End Collection
printf '%b' "$desc" > "$GADGET/functions/$FUNCTION/report_desc"

ln -s "$GADGET/functions/$FUNCTION" "$GADGET/configs/$CONFIG/"
bind
log "gadget $GADGET_NAME ready: $VENDOR_ID:$PRODUCT_ID serial $SERIAL"
