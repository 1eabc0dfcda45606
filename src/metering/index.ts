/**
 * Metering: units and tariffs, the Meter and ServiceGate ports, the credit window (pure), and the
 * payer's stream and payee's guard loops. Device adapters (network interface counters, a simulated
 * meter, callback and command gates) are in devices/.
 */
export * from './units.js';
export * from './tariff.js';
export * from './meter.js';
export * from './credit.js';
export * from './stream.js';
