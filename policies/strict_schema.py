"""Whether a response schema can go to OpenAI as a strict structured output (``strict:
true``: the model's answer is then constrained to the schema, not merely asked for it).
Strict mode takes a subset of JSON Schema: an object at the root, every object closed
(``additionalProperties: false``) with every property required, and a known set of
keywords. A schema outside it is sent as it is, without strict, and the cascade's schema
check stays the guard; it is never rewritten (making an optional field required would
change what the producer asked for)."""

from __future__ import annotations

from typing import Any

# The keywords strict mode accepts (OpenAI's structured outputs documentation).
STRICT_KEYWORDS = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "enum", "const",
        "anyOf", "description", "title", "$defs", "definitions", "$ref", "pattern", "format",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
        "minItems", "maxItems",
    }
)  # fmt: skip


def strict_allowed(schema: dict[str, Any]) -> bool:
    """True when ``schema`` can be sent with ``strict: true`` unchanged."""
    return schema.get("type") == "object" and "anyOf" not in schema and _strict_node(schema)


def _strict_node(node: Any) -> bool:
    if not isinstance(node, dict):
        return False
    if set(node) - STRICT_KEYWORDS:
        return False
    types = node.get("type")
    if types == "object" or (isinstance(types, list) and "object" in types):
        properties = node.get("properties", {})
        if node.get("additionalProperties") is not False:
            return False
        if set(node.get("required", [])) != set(properties):
            return False
        if not all(_strict_node(p) for p in properties.values()):
            return False
    if "items" in node and not _strict_node(node["items"]):
        return False
    branches = [*node.get("anyOf", []), *node.get("$defs", {}).values()]
    branches += list(node.get("definitions", {}).values())
    return all(_strict_node(b) for b in branches)
