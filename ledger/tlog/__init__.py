"""Spec-named primitives: RFC 9162 hashing and proofs, leaves, C2SP signed notes, checkpoints,
cosignatures, tlog-proofs, keys."""
