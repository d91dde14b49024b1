"""Tax: lots, disposals and IRS reports from a user's transactions (issue 11, tax half)."""
