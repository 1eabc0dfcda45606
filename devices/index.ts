/**
 * Device adapters for metering: Meters (network interface counters, a simulated meter) and
 * ServiceGates (callbacks, commands). Node-only (fs, child_process); the ports they implement are in
 * src/metering.
 */
export * from './netif-meter.js';
export * from './simulated-meter.js';
export * from './service-gate.js';
