"""Fraud scoring service."""
