"""The floors: the least a Python gateway must do, written for the benchmark and measured in the same run.

``http_floor`` is a bare ASGI app on uvicorn with one pooled aiohttp session and orjson, translating an
OpenAI chat request to Anthropic and back with no validation, schema objects, metrics or logs.
``grpc_floor`` is a bare grpc.aio server making the same upstream call for the same proto messages.
Neither is a product: they exist so every gateway figure can be read as a ratio to its floor.
"""
