"""Customer intelligence: scores, CLV and P(alive), preferences, recommendations."""
