"""Entry points: the ASGI app (uvicorn) and the Lambda handler (Mangum).

The container, and with it the verified champion model, is built at import: Lambda's init
phase pays for it once (Mangum runs the ASGI lifespan on every invocation, so a startup
hook would pay it per request), and a corrupt or missing model fails the start with a
clear error instead of failing requests.
"""

from __future__ import annotations

from mangum import Mangum

from .api import create_app
from .container import build_container
from .settings import get_settings

container = build_container(get_settings())
app = create_app(container)
handler = Mangum(app, lifespan="off")
