"""Evaluations of the kiosk's models on labelled data (face identification)."""
