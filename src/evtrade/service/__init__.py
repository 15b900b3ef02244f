"""The RSU service: FastAPI REST API, the drivers' web pages and the RSU dashboard."""
