"""Shared leaves: cell specs, statuses, statistics, registries, the environment."""
