"""Trading: paper accounts, orders and positions, the risk manager, and strategies deployed to paper."""
