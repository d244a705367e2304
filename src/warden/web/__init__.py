"""HTTP edge: the FastAPI app factory and thin routers."""
