"""Batch feature jobs and the transaction simulator."""
