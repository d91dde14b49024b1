"""Accounts: users, sign-in, sessions and the one plan table (`plans`). Importing this package loads nothing heavy."""
