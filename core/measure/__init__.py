"""Measurement: campaign goals and uplift against control, stage and program KPIs, and
the daily KPI snapshots that trends read."""
