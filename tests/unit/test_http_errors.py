"""OpenAI error objects for routing errors (unknown path, wrong method) of a FastAPI app."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException
from starlette.testclient import TestClient

from modeldeploy_serving.http_errors import install, openai_error


def test_openai_error_shape() -> None:
    assert openai_error(404, "Not Found: GET /x") == {
        "error": {"message": "Not Found: GET /x", "type": "Not Found", "param": None, "code": 404}
    }
    assert openai_error(599, "odd")["error"]["type"] == "Error"


def test_routing_errors_become_openai_errors_and_app_errors_keep_their_handler() -> None:
    app = FastAPI()

    @app.exception_handler(HTTPException)
    async def own(request: object, exc: HTTPException) -> object:
        from starlette.responses import JSONResponse

        return JSONResponse({"own": exc.detail}, status_code=exc.status_code)

    @app.post("/v1/thing")
    async def thing() -> None:
        raise HTTPException(418, "teapot")

    # As vLLM's build_app leaves it: the middleware stack (and its copy of the handlers) built.
    app.middleware_stack = app.build_middleware_stack()
    install(app)
    client = TestClient(app)
    missing = client.get("/v1/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "Not Found: GET /v1/nothing"
    wrong = client.get("/v1/thing")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert wrong.json()["error"]["code"] == 405
    # The app's own HTTPException (FastAPI's subclass) still goes to the app's handler.
    assert client.post("/v1/thing").json() == {"own": "teapot"}
