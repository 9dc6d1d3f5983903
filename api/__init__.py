"""geoplan's planning service: a thin FastAPI shell over the library.

Start it with ``uvicorn api.main:create_app --factory --host 127.0.0.1 --port 8000``;
the OpenAPI docs are at ``/docs``.
"""
