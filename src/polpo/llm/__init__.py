"""Models and the chat agent (pydantic-ai)."""
