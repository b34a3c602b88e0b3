"""Endpoints and inference: see DESIGN.md; built by a later issue."""
