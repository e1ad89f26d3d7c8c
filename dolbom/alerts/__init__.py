"""Care alerts (DESIGN.md §5): rules engine, alert lifecycle, notifications."""
