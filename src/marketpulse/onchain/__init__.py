"""USDT paid on-chain: invoices with a unique amount, verification of a transfer with web3.py, and a watcher."""
