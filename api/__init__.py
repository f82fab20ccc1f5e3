"""The HTTP API and the control-room page (FastAPI)."""
