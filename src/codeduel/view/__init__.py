"""`codeduel view`: a local, read-only web page over the run store (Starlette, uvicorn)."""

from codeduel.view._app import bind, create_app, serve

__all__ = ["bind", "create_app", "serve"]
