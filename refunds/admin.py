"""Admin for this app."""
