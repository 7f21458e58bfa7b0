"""The district registry: the YAML a deployment keeps (districts), what differs per SIS (sis_profiles),
and the example file to start from (districts.example.yaml)."""
