"""Grafana dashboards as code (docs/dashboards.md): the catalogue of dashboards and
panels, their build into Grafana JSON and provisioning files, and the deploy command."""
