"""HTTP serving: `create_app(model_dir, ...)` builds the FastAPI app, `serve(...)` runs it with uvicorn."""

from albertkit.serve.app import create_app, serve

__all__ = ["create_app", "serve"]
