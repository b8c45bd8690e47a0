"""The scoring API: FastAPI, wrapped by Mangum for AWS Lambda, served by uvicorn locally.

``lambda_handler.app:handler`` is the Lambda entry point, ``lambda_handler.app:app`` the
ASGI app, ``lambda_handler.outbox:handler`` the scheduled drain of the review outbox.
"""
