"""Portfolio across exchanges (ccxt), EVM and Solana wallets and paper trading: holdings, value, history."""
