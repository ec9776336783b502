"""Over-the-air updates: signed manifest, git checkout, restart, health gate, rollback."""
