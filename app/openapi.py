"""The OpenAPI 3.0 description of `/api/v1`, with this instance's limits in it."""

from __future__ import annotations

from typing import Any

from app.alerting import STATUSES
from app.audience_openapi import audience_paths
from app.config import Config
from app.openapi_posts import SCHEMAS as POSTS_SCHEMAS
from app.openapi_posts import posts_paths
from insights.alerts import ALERT_KINDS, SEVERITIES
from streaming.records import ENGAGEMENT_KEYS, MAX_COUNT

_NULLABLE_STRING = {"type": "string", "nullable": True}
_STRINGS = {"type": "array", "items": {"type": "string"}}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    return schema


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


_NUMBER = {"type": "number"}
ALERT: dict[str, Any] = {
    "type": "object",
    "required": ["id", "kind", "subject", "severity", "status", "explanation", "samples"],
    "properties": {
        "id": {"type": "string"},
        "kind": {"type": "string", "enum": list(ALERT_KINDS)},
        "subject": {"type": "string", "description": "#tag, cluster:<id>, keyword:<w>, post:<id>"},
        "window_start": _NUMBER,
        "window_end": _NUMBER,
        "first_window": _NUMBER,
        "observed": _NUMBER,
        "expected": _NUMBER,
        "score": {"type": "number", "description": "−log10 of the p-value"},
        "p_value": _NUMBER,
        "severity": {"type": "string", "enum": list(SEVERITIES)},
        "explanation": {"type": "string"},
        "samples": {"type": "array", "maxItems": 5, "items": {"type": "object"}},
        "explore_url": {"type": "string"},
        "status": {"type": "string", "enum": list(STATUSES)},
        "occurrences": {"type": "integer"},
        "resolved_at": {"type": "number", "nullable": True},
        "provisional": {
            "type": "boolean",
            "description": "found when its window ended, before the late posts were counted",
        },
        "acknowledged_at": {"type": "number", "nullable": True},
        "acknowledged_by": {"type": "string", "nullable": True},
    },
}


TRACKED_TOPIC = _object(
    {
        "name": {"type": "string"},
        "keywords": {"type": "array", "items": {"type": "string"}},
        "hashtags": {"type": "array", "items": {"type": "string"}},
        "posts": {"type": "integer"},
        "mean_sentiment": {"type": "number", "nullable": True},
        "share_of_voice": {"type": "number", "minimum": 0, "maximum": 1},
    },
    ["name", "keywords", "hashtags", "posts", "mean_sentiment", "share_of_voice"],
)


def openapi_spec(config: Config) -> dict[str, Any]:
    """The description served at `/api/v1/openapi.json` and drawn by `/api/docs`."""
    counts = {
        key: {"type": "integer", "minimum": 0, "maximum": MAX_COUNT} for key in ENGAGEMENT_KEYS
    }
    post = _object(
        {
            "id": {
                "description": "Kept as given; a new one is made when missing.",
                "oneOf": [
                    {"type": "string", "minLength": 1, "maxLength": 200},
                    {"type": "integer"},
                ],
            },
            "text": {"type": "string", "minLength": 1, "maxLength": config.max_text_length},
            "author": {"type": "string", "maxLength": 200, "nullable": True},
            "created_at": {
                "description": "ISO 8601 time, or seconds since 1970 (default: now).",
                "oneOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
            },
            "hashtags": {
                "description": "Default: the #tags found in the text.",
                "type": "array",
                "maxItems": 100,
                "items": {"type": "string", "maxLength": 100},
            },
            "author_followers": {
                "type": "integer",
                "minimum": 0,
                "maximum": MAX_COUNT,
                "nullable": True,
            },
            "lang": {"type": "string", "maxLength": 20, "nullable": True},
            "source": {"type": "string", "maxLength": 100, "nullable": True},
            "engagement": {
                "description": "Observed counts, when known; never used to predict.",
                "nullable": True,
                **_object(counts),
            },
        },
        ["text"],
    )
    number = {"type": "number"}
    analysis = _object(
        {
            "id": {"type": "string"},
            "text": {"type": "string"},
            "author": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "hashtags": _STRINGS,
            "mentions": _STRINGS,
            "urls": _STRINGS,
            "emoji": _STRINGS,
            "author_followers": {"type": "integer", "nullable": True},
            "lang": _NULLABLE_STRING,
            "source": _NULLABLE_STRING,
            "observed_engagement": {"nullable": True, **_object(counts)},
            "sentiment": _object(
                {
                    "compound": {"type": "number", "minimum": -1, "maximum": 1},
                    "pos": number,
                    "neu": number,
                    "neg": number,
                    "label": {"type": "string", "enum": ["positive", "neutral", "negative"]},
                    "calibrated_label": {
                        "type": "string",
                        "enum": ["positive", "neutral", "negative"],
                        "nullable": True,
                        "description": "VADER and a text model trained on labelled tweets, "
                        "stacked (VADER's label where no model was trained).",
                    },
                    "calibrated_probability": {
                        "type": "number",
                        "minimum": 0,
                        "maximum": 1,
                        "nullable": True,
                        "description": "Calibrated probability of `calibrated_label`.",
                    },
                },
                ["compound", "pos", "neu", "neg", "label"],
            ),
            "cluster": _object({"id": {"type": "integer"}, "label": {"type": "string"}}),
            "engagement": _object(
                {
                    "predicted": number,
                    "band": {"type": "string", "enum": ["low", "medium", "high"]},
                },
                ["predicted", "band"],
            ),
            "model_version": {"type": "string"},
            "latency_ms": number,
            "scored_at": number,
            "received_at": number,
            "explanation": _object(
                {
                    "sentiment_drivers": {
                        "type": "array",
                        "items": _object({"token": {"type": "string"}, "valence": number}),
                    },
                    "cluster_terms": _STRINGS,
                    "engagement_baseline": {"type": "number", "nullable": True},
                    "engagement_contributions": {
                        "type": "array",
                        "items": _object(
                            {
                                "feature": {"type": "string"},
                                "value": number,
                                "contribution": number,
                            }
                        ),
                    },
                }
            ),
        },
        ["id", "text", "sentiment", "cluster", "engagement", "model_version", "explanation"],
    )
    error = _object(
        {
            "error": {"type": "string"},
            "index": {"type": "integer", "description": "The bad post of a batch."},
        },
        ["error"],
    )

    def error_response(why: str) -> dict[str, Any]:
        return {
            "description": why,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }

    spec = {
        "openapi": "3.0.3",
        "info": {
            "title": "SocialPulse API",
            "version": "1",
            "description": "Score posts on demand: sentiment (VADER), topic cluster and "
            "predicted engagement, each with what drove it. Nothing sent here teaches the "
            "live models.",
        },
        "paths": {
            "/api/v1/analyze": {
                "post": {
                    "summary": "Score one post, or a batch of posts",
                    "operationId": "analyze",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/Post"},
                                        _object(
                                            {
                                                "posts": {
                                                    "type": "array",
                                                    "minItems": 1,
                                                    "maxItems": config.api_max_batch,
                                                    "items": {"$ref": "#/components/schemas/Post"},
                                                }
                                            },
                                            ["posts"],
                                        ),
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "The analysis of the post, or `results` of a batch "
                            "in the order sent.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "oneOf": [
                                            {"$ref": "#/components/schemas/Analysis"},
                                            _object(
                                                {
                                                    "results": {
                                                        "type": "array",
                                                        "items": {
                                                            "$ref": "#/components/schemas/Analysis"
                                                        },
                                                    }
                                                },
                                                ["results"],
                                            ),
                                        ]
                                    }
                                }
                            },
                        },
                        "400": error_response("Invalid input; `index` names the bad post."),
                        "413": error_response(
                            f"Body over {config.max_body_bytes} bytes, or over "
                            f"{config.api_max_chars} characters of text in all."
                        ),
                        "415": error_response("The body is not `application/json`."),
                        "401": error_response(
                            "No API token, or an unknown or revoked one (only while access "
                            "control is on)."
                        ),
                        "403": error_response(
                            "The token lacks the `analyze` scope, or its role may not do this."
                        ),
                    },
                    # Needed while access control is on (users exist, or a public bind).
                    "security": [{"bearer": []}],
                }
            },
            "/api/v1/alerts": {
                "get": {
                    "summary": "The newest alerts first, filtered",
                    "operationId": "alerts",
                    "parameters": [
                        _query("kind", {"type": "string", "enum": list(ALERT_KINDS)}),
                        _query("severity", {"type": "string", "enum": list(SEVERITIES)}),
                        _query("status", {"type": "string", "enum": list(STATUSES)}),
                        _query("subject", {"type": "string", "maxLength": 200}),
                        _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
                        _query(
                            "before",
                            {
                                "type": "string",
                                "maxLength": 100,
                                "description": "the previous page's `next`",
                            },
                        ),
                    ],
                    "responses": {
                        "200": {
                            "description": "Alerts from the archive, newest first.",
                            "content": {
                                "application/json": {
                                    "schema": _object(
                                        {
                                            "alerts": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/Alert"},
                                            },
                                            "next": {
                                                "type": "string",
                                                "nullable": True,
                                                "description": "`before` of the next page "
                                                "(null: the last page)",
                                            },
                                        },
                                        ["alerts", "next"],
                                    )
                                }
                            },
                        },
                        "400": error_response("An unknown filter or a bad value."),
                        "401": error_response("No API token, or an unknown or revoked one."),
                        "403": error_response("The token lacks the `read` scope."),
                    },
                    "security": [{"bearer": []}],
                }
            },
            **posts_paths(error_response),
            "/api/v1/tracked-topics": {
                "get": {
                    "summary": "Tracked topics with their live figures",
                    "operationId": "trackedTopics",
                    "responses": {
                        "200": {
                            "description": "Each tracked topic with its posts, mean sentiment "
                            "and share of voice over the dashboard's kept windows.",
                            "content": {
                                "application/json": {
                                    "schema": _object(
                                        {
                                            "topics": {
                                                "type": "array",
                                                "items": {
                                                    "$ref": "#/components/schemas/TrackedTopic"
                                                },
                                            }
                                        },
                                        ["topics"],
                                    )
                                }
                            },
                        },
                        "401": error_response("No API token, or an unknown or revoked one."),
                        "403": error_response("The token lacks the `read` scope."),
                        "404": error_response("The archive, which keeps them, is off."),
                    },
                    "security": [{"bearer": []}],
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "summary": "This description",
                    "operationId": "openapi",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.0",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Post": post,
                "Analysis": analysis,
                "Error": error,
                "Alert": ALERT,
                **POSTS_SCHEMAS,
                "TrackedTopic": TRACKED_TOPIC,
            },
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token `sp_…` from `socialpulse tokens create` or "
                    "the admin page, with the scope the operation names.",
                }
            },
        },
    }
    spec["paths"].update(audience_paths(config))
    return spec
