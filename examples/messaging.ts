/**
 * The messaging half of the demo: an embedded MQTT broker on loopback, a hotspot that announces
 * its service (signed, retained), and a sensor that discovers it, opens a BOLT 8 session and
 * exchanges messages with it — each side seeing only authenticated, decoded messages.
 */
import { randomIdentity } from '../src/session/identity.js';
import { startEmbeddedBroker, startMqttMessenger } from '../src/transport/mqtt/index.js';
import type { Messenger } from '../src/node/messenger.js';
import type { WireMessage } from '../src/wire/index.js';

export interface MessagingReport {
  lines: string[];
  ok: boolean;
}

function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve) => {
    const poll = () => {
      if (condition()) return resolve(true);
      if (Date.now() > deadline) return resolve(false);
      setTimeout(poll, 10);
    };
    poll();
  });
}

export async function runMessaging(messages = 1000): Promise<MessagingReport> {
  const lines: string[] = [];
  const broker = await startEmbeddedBroker({ port: 0 });
  lines.push(`embedded MQTT broker (aedes) on ${broker.url}`);
  let hotspot: Messenger | undefined;
  let sensor: Messenger | undefined;
  try {
    hotspot = await startMqttMessenger({ url: broker.url, identity: randomIdentity() });
    await hotspot.announce([
      {
        serviceId: 'hotspot',
        unit: 'MB',
        tariffMsatPerUnit: 1_000n,
        creditWindowUnits: 10n,
        minCapacitySat: 10_000n,
        maxCapacitySat: 1_000_000n,
      },
    ]);
    lines.push(`hotspot ${hotspot.nodeId.slice(0, 16)}… announced 'hotspot' at 1,000 msat/MB (signed, retained)`);

    sensor = await startMqttMessenger({ url: broker.url, identity: randomIdentity() });
    const found = await waitFor(() => sensor!.directory().size > 0);
    const [providerId, entry] = [...sensor.directory()][0] ?? [];
    if (!found || providerId === undefined || entry === undefined) throw new Error('no provider discovered');
    const offer = entry.announcement.services[0]!;
    lines.push(
      `sensor discovered ${providerId.slice(0, 16)}… offering '${offer.serviceId}' at ${offer.tariffMsatPerUnit} msat/${offer.unit} (signature verified)`,
    );

    const received: WireMessage[] = [];
    hotspot.onMessage((_peer, message) => received.push(message));
    let pongs = 0;
    sensor.onMessage((_peer, message) => {
      if (message.type === 'pong') pongs++;
    });
    const channelId = crypto.getRandomValues(new Uint8Array(32));
    const started = performance.now();
    await sensor.send(providerId, { type: 'ping', id: 1 });
    for (let i = 0; i < messages; i++) {
      await sensor.send(providerId, { type: 'oneway_pay_ack', channelId, paymentNumber: BigInt(i), amountMsat: BigInt(i) * 1_000n });
    }
    const delivered = await waitFor(() => received.length === messages && pongs === 1);
    const elapsedMs = performance.now() - started;
    const inOrder = received.every((m, i) => m.type === 'oneway_pay_ack' && m.paymentNumber === BigInt(i));
    const stats = hotspot.stats().session;
    lines.push(
      `BOLT 8 session: ${received.length}/${messages} encrypted messages delivered ${inOrder ? 'once each, in order' : 'OUT OF ORDER'} ` +
        `in ${elapsedMs.toFixed(0)} ms; ping answered: ${pongs === 1 ? 'yes' : 'no'}; frames dropped: ${Object.keys(stats.dropped).length === 0 ? 'none' : JSON.stringify(stats.dropped)}`,
    );
    return { lines, ok: delivered && inOrder };
  } finally {
    await sensor?.stop();
    await hotspot?.stop();
    await broker.close();
  }
}
