"""Feeds turn a source into normalized updates: the simulator, and more to come."""
