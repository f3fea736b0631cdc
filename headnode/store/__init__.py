"""Persistence behind one Store interface (SQLite by default)."""
