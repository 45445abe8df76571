"""Structured output: find the JSON value in a reply, validate it against the request's schema, and
build the one repair request (or the instruction a server without ``response_format`` needs)."""
from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from chunkctl.llm.types import Message, Request, SchemaError

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def parse_json(text: str, schema: dict[str, Any]) -> Any:
    """The reply's JSON value, validated against ``schema``; SchemaError says what is wrong.

    Models wrap JSON in prose or code fences; the first decodable value from the first ``{`` or
    ``[`` is taken, which never changes a value that was emitted bare."""
    import jsonschema

    value = _first_json(text)
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as e:
        where = "/".join(map(str, e.absolute_path)) or "the top level"
        raise SchemaError(f"reply does not match the schema at {where}: {e.message}") from None
    return integers(value, schema)


def integers(value: Any, schema: dict[str, Any]) -> Any:
    """``value`` with integral floats made ints where the schema wants an integer (JSON Schema
    counts ``2.0`` as the integer 2, and as a member of ``enum: [1, 2]``; Python's list indexing
    does not). Validated already, so every such float is integral."""
    if isinstance(value, float) and value.is_integer() and (
            schema.get("type") == "integer" or any(isinstance(x, int) and x == value for x in schema.get("enum", ()))):
        return int(value)
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        return {k: integers(v, props[k]) if isinstance(props.get(k), dict) else v for k, v in value.items()}
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [integers(v, schema["items"]) for v in value]
    return value


def _first_json(text: str) -> Any:
    fenced = _FENCE.search(text)
    candidates = [fenced.group(1)] if fenced else []
    candidates.append(text)
    dec = json.JSONDecoder()
    for cand in candidates:
        for m in re.finditer(r"[\[{]", cand):
            try:
                return dec.raw_decode(cand, m.start())[0]
            except json.JSONDecodeError:
                continue
    snippet = text.strip().replace("\n", " ")[:120]
    raise SchemaError(f"reply is not JSON: {snippet!r}" if snippet else "reply is empty")


def schema_instruction(schema: dict[str, Any]) -> str:
    return ("Answer with one JSON value only, no prose, valid for this JSON schema:\n"
            + json.dumps(schema, separators=(",", ":")))


def with_instruction(req: Request) -> Request:
    """The request with the schema stated in the prompt, for servers that cannot enforce it."""
    note = schema_instruction(req.schema)
    if req.prompt is not None:
        return replace(req, prompt=f"{req.prompt}\n\n{note}\n")
    *head, last = req.messages
    return replace(req, messages=(*head, Message(last.role, f"{last.content}\n\n{note}")))


def repair_request(req: Request, reply: str, error: str) -> Request:
    """One more turn: the model sees its reply and what was wrong with it."""
    fix = f"That reply is not valid: {error}. {schema_instruction(req.schema)}"
    if req.prompt is not None:
        return replace(req, prompt=f"{req.prompt}{reply}\n\n{fix}\n")
    return replace(req, messages=(*req.messages, Message("assistant", reply), Message("user", fix)))
