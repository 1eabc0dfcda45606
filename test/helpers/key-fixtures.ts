/**
 * Test fixtures for the Trickle key: a KeyCore behind a real KeyLink, reached through the real framing
 * by an in-memory HID transport (unpluggable), and the channel terms the policy tests sign against.
 */
import { KeyCore, type ConfirmPort, type KeyCoreOptions } from '../../firmware-bridge/core/key.js';
import { KeyLink } from '../../firmware-bridge/core/link.js';
import type { KeyStorage } from '../../firmware-bridge/core/state.js';
import { AbstractHidTransport, type HidConnection, type HidConnector } from '../../src/signer/hid/transport.js';
import { HidError } from '../../src/signer/hid/errors.js';
import { HidSigner, type HidSignerOptions } from '../../src/signer/hid/signer.js';
import { SoftwareSigner } from '../../src/signer/software.js';

export class MemoryKeyStorage implements KeyStorage {
  bytes: Uint8Array | undefined;
  commits = 0;
  failNext = false;
  async load(): Promise<Uint8Array | undefined> {
    return this.bytes ? Uint8Array.from(this.bytes) : undefined;
  }
  async commit(state: Uint8Array): Promise<void> {
    if (this.failNext) {
      this.failNext = false;
      throw new Error('disk full');
    }
    this.bytes = Uint8Array.from(state);
    this.commits++;
  }
}

export const approve: ConfirmPort = { confirm: async () => true };
export const deny: ConfirmPort = { confirm: async () => false };

/** The host end of an in-memory cable: reports go to the key's link on a microtask, as a USB round trip would. */
class MemoryTransport extends AbstractHidTransport {
  constructor(
    private readonly deliver: (report: Uint8Array) => void,
    private readonly onClosed: () => void,
  ) {
    super();
  }
  async write(report: Uint8Array): Promise<void> {
    const error = this.checkWrite(report);
    if (error) throw error;
    const copy = Uint8Array.from(report);
    queueMicrotask(() => this.deliver(copy));
  }
  async close(): Promise<void> {
    this.finish();
    this.onClosed();
  }
  fromKey(report: Uint8Array): void {
    queueMicrotask(() => this.emitReport(report));
  }
  unplug(): void {
    this.finish(new Error('unplugged'));
    this.onClosed();
  }
}

/**
 * A key in this process: `unplug()` drops the cable (the host sees DISCONNECTED), `plugged = false` makes
 * connect() fail with NOT_FOUND until `plugged = true` again; `restart()` reloads the core from its storage.
 */
export class MemoryKey implements HidConnector {
  core!: KeyCore;
  link!: KeyLink;
  plugged = true;
  connections = 0;
  /** Called when the key has handled a command, before its answer goes out (a test may unplug here). */
  afterCommand: ((command: number) => void) | undefined;
  #transport: MemoryTransport | undefined;

  private constructor(readonly options: KeyCoreOptions) {}

  static async create(options: Partial<KeyCoreOptions> = {}): Promise<MemoryKey> {
    const key = new MemoryKey({ storage: new MemoryKeyStorage(), confirm: approve, ...options });
    await key.restart();
    return key;
  }

  get storage(): MemoryKeyStorage {
    return this.options.storage as MemoryKeyStorage;
  }

  async restart(): Promise<void> {
    this.#transport?.unplug();
    this.core = await KeyCore.open(this.options);
    this.link = new KeyLink({
      send: (report) => this.#transport?.fromKey(report),
      handle: async (command, payload, context) => {
        const answer = await this.core.handle(command, payload, context);
        this.afterCommand?.(command);
        return answer;
      },
      version: { major: 0, minor: 1, build: 0 },
    });
  }

  unplug(): void {
    this.#transport?.unplug();
    this.#transport = undefined;
    this.link.reset();
  }

  describe(): string {
    return 'in-memory key';
  }

  async connect(): Promise<HidConnection> {
    if (!this.plugged) throw new HidError('NOT_FOUND', 'no key attached');
    this.#transport?.unplug();
    this.link.reset();
    this.connections++;
    const transport = new MemoryTransport(
      (report) => {
        if (this.#transport === transport) this.link.receive(report);
      },
      () => {
        if (this.#transport === transport) this.#transport = undefined;
      },
    );
    this.#transport = transport;
    return { transport, path: 'memory' };
  }
}

export const hostSigner = SoftwareSigner.fromSeed(new Uint8Array(32).fill(7));

export async function hidSignerFor(key: HidConnector, options: Partial<HidSignerOptions> = {}): Promise<HidSigner> {
  return HidSigner.connect({ connector: key, hostSigner, reconnectIntervalMs: 10, ...options });
}
