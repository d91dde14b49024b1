"""Credits: an append-only ledger per user (grants, purchases, usage, refunds, adjustments) and its balance."""
