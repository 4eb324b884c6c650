"""Judging one test: its gates, accuracy comparison, budgets and the records they produce."""
