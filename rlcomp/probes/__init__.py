"""Measurements of a policy: returns, time, resources, size."""
