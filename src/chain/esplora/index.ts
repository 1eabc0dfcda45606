/** The Esplora REST adapter of the ChainSource port (see chain.ts). */
export { EsploraChain, FEERATE_FLOOR_PER_KW, MAX_FEERATE_SAT_PER_VB } from './chain.js';
export type { EsploraChainOptions, EsploraNetwork, AddressUtxo } from './chain.js';
