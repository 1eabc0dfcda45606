/**
 * The broker round-trip ceiling: two bare mqtt.js clients in two processes, one echoing what the other
 * sends, QoS 1 both ways (as the Trickle transport publishes), payloads of a payment's size. What a payment
 * round trip costs at least on this broker, with no Noise, CBOR, signature or store in the way. TCP_NODELAY
 * as the Trickle transport sets it.
 */
import mqtt, { type MqttClient } from 'mqtt';

let client: MqttClient | undefined;

async function connect(url: string, listen: string, onMessage: (payload: Buffer) => void): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, { protocolVersion: 4, clean: true, reconnectPeriod: 0, clientId: `bench-${process.pid}-${listen.length}` });
  // As src/transport/mqtt/transport.ts: mqtt.js leaves Nagle's algorithm on, the transport turns it off.
  (c.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  c.on('message', (_topic, payload) => onMessage(payload));
  await c.subscribeAsync(listen, { qos: 1 });
  return c;
}

function publish(c: MqttClient, topic: string, payload: Buffer): void {
  c.publish(topic, payload, { qos: 1 }, () => undefined);
}

export interface PingResult {
  windowed: { roundTrips: number; elapsedMs: number };
  sequentialMs: number[];
}

export async function mqttCommand(req: Record<string, unknown>): Promise<unknown> {
  const url = req.url as string;
  switch (req.op) {
    case 'echo': {
      const reply = req.reply as string;
      client = await connect(url, req.listen as string, (payload) => publish(client!, reply, payload));
      return { ready: true };
    }
    case 'ping': {
      const target = req.target as string;
      const window = req.window as number;
      const durationMs = req.durationMs as number;
      const count = req.count as number;
      const sequentialMaxMs = req.sequentialMaxMs as number;
      const payload = Buffer.alloc(req.payloadBytes as number, 0x5a);
      let onEcho: () => void = () => undefined;
      client = await connect(url, req.listen as string, () => onEcho());
      const c = client;
      // Windowed: keep `window` round trips outstanding for durationMs, then let them finish.
      const windowed = await new Promise<{ roundTrips: number; elapsedMs: number }>((resolve) => {
        const start = performance.now();
        const deadline = start + durationMs;
        let inFlight = 0;
        let done = 0;
        const fill = (): void => {
          while (inFlight < window && performance.now() < deadline) {
            inFlight++;
            publish(c, target, payload);
          }
        };
        onEcho = () => {
          inFlight--;
          done++;
          fill();
          if (inFlight === 0) resolve({ roundTrips: done, elapsedMs: performance.now() - start });
        };
        fill();
      });
      // Sequential: one at a time, each timed (at most `count`, for at most sequentialMaxMs).
      const sequentialMs: number[] = [];
      const seqStart = performance.now();
      for (let i = 0; i < count && performance.now() - seqStart < sequentialMaxMs; i++) {
        const t = performance.now();
        await new Promise<void>((resolve) => {
          onEcho = resolve;
          publish(c, target, payload);
        });
        sequentialMs.push(performance.now() - t);
      }
      return { windowed, sequentialMs } satisfies PingResult;
    }
    case 'close':
      await client?.endAsync();
      client = undefined;
      return { closed: true };
    default:
      throw new Error(`mqtt: unknown op ${String(req.op)}`);
  }
}
