/** BOLT 3 §Fee Calculation (no anchors): expected weights and the fees derived from them. */
import { feeForWeight } from '../../amounts.js';

export const COMMITMENT_BASE_WEIGHT = 724;
export const HTLC_OUTPUT_WEIGHT = 172;
export const HTLC_TIMEOUT_WEIGHT = 663;
/** 702 by count; BOLT 3 keeps 703 for historical reasons and so must we to agree with peers. */
export const HTLC_SUCCESS_WEIGHT = 703;

export function commitmentWeight(untrimmedHtlcs: number): number {
  return COMMITMENT_BASE_WEIGHT + HTLC_OUTPUT_WEIGHT * untrimmedHtlcs;
}

/** feerate_per_kw * (724 + 172 * untrimmed HTLCs) / 1000, floored. */
export function commitmentBaseFeeSat(feeratePerKw: bigint, untrimmedHtlcs: number): bigint {
  return feeForWeight(feeratePerKw, commitmentWeight(untrimmedHtlcs));
}

export function htlcTimeoutFeeSat(feeratePerKw: bigint): bigint {
  return feeForWeight(feeratePerKw, HTLC_TIMEOUT_WEIGHT);
}

export function htlcSuccessFeeSat(feeratePerKw: bigint): bigint {
  return feeForWeight(feeratePerKw, HTLC_SUCCESS_WEIGHT);
}
