"""A request's body as a pydantic model, or one ``InvalidError`` naming each problem.

Written once for every adapter: REST bodies, the embedded client's decisions and kernel
tools, next the chat panel and MCP, so a bad request reads the same wherever it came from.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from agentspace.errors import InvalidError

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Any) -> M:
    """``data`` (JSON-shaped) as ``model``; ``InvalidError`` says where and what is wrong."""
    try:
        return model.model_validate(data)
    except RecursionError as exc:
        raise InvalidError("The request is invalid: nested too deep.") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidError(f"The request is invalid: {problems}.") from exc
