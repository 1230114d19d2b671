"""See payments/services/__init__.py."""
