"""Talking to trained adapters: generation streamed token by token as Server-Sent Events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.deps import StateDep, require
from api.errors import stream_error_responses
from api.services.generation import GenerationService, as_messages
from api.services.keys import Role

router = APIRouter(prefix="/models", tags=["models"])

MAX_NEW_TOKENS = 512
MAX_CHARS = 16_000


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=MAX_CHARS)


class GenerateRequest(BaseModel):
    """A conversation (``messages``) or a single ``prompt``, and how to sample."""

    model_config = ConfigDict(extra="forbid")

    messages: list[ChatMessage] | None = Field(default=None, min_length=1, max_length=64)
    prompt: str | None = Field(default=None, min_length=1, max_length=MAX_CHARS)
    max_new_tokens: int = Field(default=128, ge=1, le=MAX_NEW_TOKENS)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="0: greedy.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    base: str | None = Field(
        default=None,
        pattern=r"^(tiny(-[a-z0-9_]+)?|smollm2-135m)$",
        description="Base model; default: the one the adapter was trained on (tiny for `base`).",
    )


def _service(state: StateDep) -> GenerationService:
    return state.parts.generation


def _checked(
    adapter: Annotated[
        str,
        Path(
            pattern=r"^[A-Za-z0-9_-]{1,100}$",
            description="A finished run's id (or its request id), or `base`.",
        ),
    ],
    body: GenerateRequest,
    state: StateDep,
) -> tuple[GenerationService, str, GenerateRequest, list[dict[str, str]]]:
    """Resolve the adapter and the conversation before the stream starts, so that a missing run
    (404), an unfinished one (409) or a bad body (422) is a plain answer."""
    service = _service(state)
    service.adapter_dir(adapter)
    messages = as_messages(
        messages=[m.model_dump() for m in body.messages] if body.messages else None,
        prompt=body.prompt,
    )
    return service, adapter, body, messages


@router.post(
    "/{adapter}/generate",
    response_class=EventSourceResponse,
    dependencies=[require(Role.TRAINER, Role.ADMIN)],
    responses=stream_error_responses(401, 403, 404, 409, 422),
)
async def generate(
    checked: Annotated[
        tuple[GenerationService, str, GenerateRequest, list[dict[str, str]]], Depends(_checked)
    ],
) -> AsyncIterator[ServerSentEvent]:
    """Generate with the adapter loaded by plain peft on its base (or the base alone), streamed
    as ``token`` events (``text``), then ``end`` (prompt and completion token counts, finish
    reason, seconds). The base's chat template formats the conversation when it has one.
    Generations run one at a time; loaded models are cached."""
    service, adapter, body, messages = checked

    def start() -> Any:
        return service.stream(
            adapter=adapter,
            messages=messages,
            max_new_tokens=body.max_new_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            seed=body.seed,
            base=body.base,
        )

    stream = await run_in_threadpool(start)
    pieces = iter(stream)
    done = object()
    index = 0
    try:
        while (piece := await run_in_threadpool(next, pieces, done)) is not done:
            yield ServerSentEvent(data={"text": piece}, event="token", id=str(index))
            index += 1
    except GeneratorExit:  # the client went away: stop generating at the next token
        stream.cancel()
        raise
    except Exception as exc:
        stream.cancel()
        yield ServerSentEvent(data={"error": type(exc).__name__}, event="error")
        return
    await run_in_threadpool(stream.wait)
    yield ServerSentEvent(
        data={
            "prompt_tokens": stream.prompt_tokens,
            "completion_tokens": stream.completion_tokens,
            "finish_reason": stream.finish_reason,
            "seconds": round(stream.seconds, 3),
            "pieces": index,
        },
        event="end",
    )
