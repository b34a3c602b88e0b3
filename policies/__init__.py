"""The policy engine: see DESIGN.md; built by a later issue."""
