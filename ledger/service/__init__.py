"""The service layer: the application, group commit, checkpoints, proofs served from memory,
the read models wired to the ledger."""
