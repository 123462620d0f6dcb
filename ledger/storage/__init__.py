"""The ledger's database: the tamper-evident store on SQLite and PostgreSQL, and the tables beside the events."""
