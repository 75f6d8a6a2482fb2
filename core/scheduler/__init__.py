"""The built-in scheduler: the leader's jobs, their records, and who leads."""
