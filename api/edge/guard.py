"""The request guard: what every request must pass before the app (and any parser in it) sees it.

In order, each refusal answered at once with the project's error body:

1. the rate limit of its key (``/v1`` only): 429 ``RateLimited`` with ``Retry-After``;
2. a body must have a media type the route declares: 415 ``UnsupportedUpload``;
3. a declared ``Content-Length`` over the route's limit: 413 ``UploadTooLarge``, nothing read;
4. the body is read as it streams, counted (chunked bodies too) and, when it is JSON, checked by
   :class:`~api.edge.json_scan.JsonBodyCheck`: 413 at the first byte over the limit, 422
   ``JsonTooDeep`` or ``JsonNotUtf8`` at the first chunk that shows it. Only a body that passed
   is handed to the app, which then reads it from memory as if it came from the client.

So a refused body never reaches a parser, and memory stays bounded by the route's limit whatever
the client sends. The limits come from :class:`~api.edge.policy.RoutePolicies`, built from the
app's OpenAPI document on the first request (routes are all added by then).
"""

from __future__ import annotations

from collections import deque

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.edge.errors import RateLimited, refusal
from api.edge.headers import route_path
from api.edge.json_scan import JsonBodyCheck
from api.edge.policy import BodyPolicy, RoutePolicies, is_json, media_type
from api.edge.ratelimit import RateLimits, bucket
from api.errors import ApiError, UnsupportedUpload, UploadTooLarge


class RequestGuard:
    """ASGI middleware in front of the app's routing; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_upload_bytes: int,
        max_json_depth: int,
        rate_limits: RateLimits,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes
        self.max_json_depth = max_json_depth
        self.rate_limits = rate_limits
        self._policies: RoutePolicies | None = None

    def policies(self, scope: Scope) -> RoutePolicies:
        if self._policies is None:
            self._policies = RoutePolicies(
                scope["app"].openapi(),
                max_body_bytes=self.max_body_bytes,
                max_upload_bytes=self.max_upload_bytes,
            )
        return self._policies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        policy = self.policies(scope).for_request(scope["method"], path)
        if path == "/v1" or path.startswith("/v1/"):
            item = self.rate_limits.submissions if policy.upload else self.rate_limits.reads
            retry_after = self.rate_limits.spend(item, bucket(scope))
            if retry_after is not None:
                limited = RateLimited(
                    f"too many requests: at most {item} for one key (or client address "
                    f"without a key); retry in {retry_after} s"
                )
                await refusal(limited, headers={"Retry-After": str(retry_after)})(
                    scope, receive, send
                )
                return
        headers = Headers(scope=scope)
        if "content-length" not in headers and "transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body
            return
        media = media_type(headers.get("content-type"))
        try:
            body = await self._read(policy, media, headers, receive)
        except ApiError as exc:
            await refusal(exc)(scope, receive, send)
            return
        if body is None:
            return  # the client left before its body was complete: nobody to answer

        async def replay() -> Message:
            return body.popleft() if body else await receive()

        await self.app(scope, replay, send)

    async def _read(
        self, policy: BodyPolicy, media: str, headers: Headers, receive: Receive
    ) -> deque[Message] | None:
        """The body's messages once all of it passed (``None`` when the client left first);
        raises the refusal at the first problem."""
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) == 0:
            return deque()
        if not policy.allows(media):
            readable = " or ".join(sorted(policy.accepts or ()))
            raise UnsupportedUpload(
                f"this endpoint reads {readable} bodies; send the matching Content-Type"
            )
        too_large = UploadTooLarge(
            f"the request body is larger than this endpoint accepts ({policy.max_bytes} bytes)"
        )
        if declared.isdigit() and int(declared) > policy.max_bytes:
            raise too_large
        check = JsonBodyCheck(max_depth=self.max_json_depth) if is_json(media) else None
        messages: deque[Message] = deque()
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > policy.max_bytes:
                raise too_large
            if check is not None:
                check.feed(chunk)
            messages.append(message)
            if not message.get("more_body", False):
                break
        if check is not None:
            check.finish()
        return messages
