"""The HTTP API (``/api/v1``) and the dashboard page, served by ``polpo serve``."""
