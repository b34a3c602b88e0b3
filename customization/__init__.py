"""Fine-tunes and model versions: see DESIGN.md; built by a later issue."""
