"""Reusable Qt widgets of the desktop application (no science in here)."""
