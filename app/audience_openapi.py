"""The OpenAPI description of `POST /api/v1/audience` (added to app/openapi.py's spec)."""

from __future__ import annotations

from typing import Any

from app.config import Config

_ERROR = {"$ref": "#/components/schemas/Error"}


def _error(why: str) -> dict[str, Any]:
    return {"description": why, "content": {"application/json": {"schema": _ERROR}}}


_RECOMMENDATION = {
    "type": "object",
    "properties": {
        "value": {"description": "topic id, hashtag or hour of day (UTC)"},
        "label": {"type": "string"},
        "posts": {"type": "integer", "description": "posts behind the figure"},
        "mean_engagement": {"type": "number"},
        "ci95": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
        "lift": {
            "type": "number",
            "nullable": True,
            "description": "mean engagement ÷ the segment's average post",
        },
        "basis": {"type": "string", "enum": ["observed", "predicted", "mixed"]},
    },
}


def audience_paths(config: Config) -> dict[str, Any]:
    """The path item of the assign endpoint, with this instance's limits."""
    recs = {"type": "array", "items": _RECOMMENDATION}
    return {
        "/api/v1/audience": {
            "post": {
                "summary": "The audience segment of an author or of a few posts, why, and "
                "that segment's recommendations",
                "operationId": "audience",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    {
                                        "type": "object",
                                        "additionalProperties": False,
                                        "required": ["handle"],
                                        "properties": {
                                            "handle": {
                                                "type": "string",
                                                "minLength": 1,
                                                "maxLength": 200,
                                                "description": "an author already seen",
                                            }
                                        },
                                    },
                                    {
                                        "type": "object",
                                        "additionalProperties": False,
                                        "required": ["texts"],
                                        "properties": {
                                            "texts": {
                                                "type": "array",
                                                "minItems": 1,
                                                "maxItems": config.audience_max_texts,
                                                "items": {
                                                    "type": "string",
                                                    "minLength": 1,
                                                    "maxLength": config.max_text_length,
                                                },
                                            }
                                        },
                                    },
                                ]
                            }
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "The segment, why, and what to do for it.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "segment": {"type": "integer"},
                                        "name": {"type": "string"},
                                        "size": {"type": "integer"},
                                        "why": {"type": "array", "items": {"type": "string"}},
                                        "distinguishing": {
                                            "type": "array",
                                            "items": {"type": "string"},
                                        },
                                        "recommendations": {
                                            "type": "object",
                                            "properties": {
                                                "topics": recs,
                                                "hashtags": recs,
                                                "hours": recs,
                                                "basis": {"type": "string"},
                                                "min_posts": {"type": "integer"},
                                            },
                                        },
                                        "content": {
                                            "type": "array",
                                            "items": {"type": "object"},
                                            "description": "recent top-engaging posts on the "
                                            "segment's interests",
                                        },
                                        "version": {"type": "string"},
                                    },
                                }
                            }
                        },
                    },
                    "400": _error(
                        "Invalid input: neither or both of handle and texts, empty "
                        "or too many texts, unknown fields."
                    ),
                    "404": _error("The handle has not been seen."),
                    "409": _error("No segmentation yet (too few authors so far)."),
                    "413": _error(
                        f"Over {config.api_max_chars} characters of text in all, or a body "
                        f"over {config.max_body_bytes} bytes."
                    ),
                    "415": _error("The body is not `application/json`."),
                    "401": _error("No API token, or an unknown or revoked one."),
                    "403": _error("The token lacks the `analyze` scope."),
                },
                "security": [{"bearer": []}],
            }
        }
    }
