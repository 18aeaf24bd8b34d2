"""The provider test server: the OpenAI and Anthropic routes over one account, and its own
control routes ``/_bill``, ``/_faults``, ``/_config``, ``/_reset``, ``/_stats``."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from producers.fakes.provider_server.account import Account
from producers.fakes.provider_server.anthropic_api import AnthropicApi
from producers.fakes.provider_server.openai_api import OpenAIApi


@dataclass
class ProviderServer:
    account: Account = field(default_factory=Account)

    @classmethod
    def with_delay(cls, batch_delay_s: float) -> ProviderServer:
        """A server whose batch jobs end ``batch_delay_s`` after they are created."""
        return cls(Account(batch_delay_s=batch_delay_s))

    async def get_bill(self, request: Request) -> Response:
        return JSONResponse(self.account.bill.snapshot())

    async def get_stats(self, request: Request) -> Response:
        return JSONResponse(dict(self.account.stats))

    async def set_faults(self, request: Request) -> Response:
        self.account.faults.set(await request.json())
        return JSONResponse({"ok": True})

    async def set_config(self, request: Request) -> Response:
        body = await request.json()
        acct = self.account
        if "batch_delay_s" in body:
            acct.batch_delay_s = float(body["batch_delay_s"])
        if "answer_words" in body:
            acct.answer_words = int(body["answer_words"])
        return JSONResponse(
            {"batch_delay_s": acct.batch_delay_s, "answer_words": acct.answer_words}
        )

    async def reset(self, request: Request) -> Response:
        self.account.reset()
        return JSONResponse({"ok": True})

    def app(self) -> Starlette:
        control = [
            Route("/_bill", self.get_bill, methods=["GET"]),
            Route("/_stats", self.get_stats, methods=["GET"]),
            Route("/_faults", self.set_faults, methods=["POST"]),
            Route("/_config", self.set_config, methods=["POST"]),
            Route("/_reset", self.reset, methods=["POST"]),
        ]
        apis = OpenAIApi(self.account).routes() + AnthropicApi(self.account).routes()
        return Starlette(routes=apis + control)
