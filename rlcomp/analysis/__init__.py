"""Statistics and figures over the tidy results table."""
