"""Offline audit tools: verification of a ledger, audit bundles and their verification."""
