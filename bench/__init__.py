"""Benchmarks: each module measures one path against a baseline in the same run and prints a Markdown table."""
