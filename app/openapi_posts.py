"""The OpenAPI description of `GET /api/v1/posts` and `/api/v1/posts/summary` (Explore's
filters on archived posts), merged into `app.openapi`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from archive.queries import (
    ENGAGEMENT_BANDS,
    MAX_CURSOR_CHARS,
    MAX_HASHTAG_CHARS,
    MAX_PAGE_SIZE,
    MAX_QUERY_CHARS,
    MAX_QUERY_TERMS,
    MAX_VALUE_CHARS,
    SENTIMENT_LABELS,
)

_TIME = {
    "type": "string",
    "maxLength": 40,
    "description": "Epoch seconds or ISO 8601 (UTC when no zone is given).",
}
_STRING = {"type": "string"}
_NULLABLE_STRING = {"type": "string", "nullable": True}
_NUMBER = {"type": "number"}
_COMPOUND = {"type": "number", "minimum": -1, "maximum": 1}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


FILTERS = [
    _query("from", _TIME, "Posts created at or after this time."),
    _query("to", _TIME, "Posts created before this time (after `from`)."),
    _query(
        "q",
        {"type": "string", "maxLength": MAX_QUERY_CHARS},
        f'Full-text search: every word must appear; "quoted words" as a phrase; at most '
        f"{MAX_QUERY_TERMS} words. Search syntax is not interpreted.",
    ),
    _query(
        "hashtag",
        {"type": "string", "maxLength": MAX_HASHTAG_CHARS + 1, "pattern": r"^#?\w+$"},
        "A hashtag, with or without `#` (any case).",
    ),
    _query(
        "cluster",
        {"type": "integer", "minimum": -999_999_999, "maximum": 999_999_999},
        "Topic cluster id.",
    ),
    _query("author", {"type": "string", "maxLength": MAX_VALUE_CHARS}, "Author, exactly."),
    _query("sentiment", {"type": "string", "enum": list(SENTIMENT_LABELS)}, "Sentiment label."),
    _query("compound_min", _COMPOUND, "Lowest VADER compound score."),
    _query("compound_max", _COMPOUND, "Highest VADER compound score."),
    _query(
        "engagement",
        {"type": "string", "enum": list(ENGAGEMENT_BANDS)},
        "Predicted engagement band.",
    ),
    _query("source", {"type": "string", "maxLength": MAX_VALUE_CHARS}, "Source, exactly."),
    _query("post", {"type": "string", "maxLength": MAX_VALUE_CHARS}, "One post id."),
    _query(
        "tracked",
        {"type": "string", "maxLength": MAX_VALUE_CHARS},
        "A tracked topic by name: posts with any of its keywords or hashtags.",
    ),
]

ARCHIVED_POST: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": _STRING,
        "created_at": {"type": "string", "format": "date-time"},
        "author": _STRING,
        "text": _STRING,
        "hashtags": {"type": "array", "items": _STRING},
        "source": _NULLABLE_STRING,
        "lang": _NULLABLE_STRING,
        "author_followers": {"type": "integer", "nullable": True},
        "sentiment_compound": _NUMBER,
        "sentiment_label": _STRING,
        "sentiment_calibrated_label": _NULLABLE_STRING,
        "sentiment_calibrated_probability": {"type": "number", "nullable": True},
        "cluster_id": {"type": "integer"},
        "cluster_label": _STRING,
        "engagement_predicted": _NUMBER,
        "engagement_band": _STRING,
        "model_version": _STRING,
        "first_seen_at": {"type": "string", "format": "date-time"},
    },
    "required": ["id", "created_at", "author", "text", "sentiment_compound", "cluster_id"],
}

SUMMARY: dict[str, Any] = {
    "type": "object",
    "required": ["total", "bucket_seconds", "series", "clusters", "hashtags", "terms"],
    "properties": {
        "total": {"type": "integer"},
        "bucket_seconds": {"type": "integer", "description": "Follows the span shown."},
        "start": {"type": "number", "nullable": True},
        "end": {"type": "number", "nullable": True},
        "series": {"type": "array", "items": {"type": "object"}},
        "clusters": {"type": "array", "items": {"type": "object"}},
        "hashtags": {"type": "array", "items": {"type": "object"}},
        "terms": {"type": "array", "items": {"type": "object"}},
    },
}

SCHEMAS = {"ArchivedPost": ARCHIVED_POST, "PostsSummary": SUMMARY}


def posts_paths(error_response: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """The `paths` entries of the archived-posts operations."""
    common = {
        "401": error_response("No API token, or an unknown or revoked one."),
        "403": error_response("The token lacks the `read` scope."),
        "503": error_response("The archive is off or its database unavailable."),
    }
    page = [
        _query(
            "cursor",
            {"type": "string", "maxLength": MAX_CURSOR_CHARS},
            "`next_cursor` of the previous page.",
        ),
        _query(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
            "Posts per page (default 50).",
        ),
    ]
    return {
        "/api/v1/posts": {
            "get": {
                "summary": "Archived posts, newest first, filtered, a page at a time",
                "operationId": "posts",
                "parameters": FILTERS + page,
                "responses": {
                    "200": {
                        "description": "A page of posts (newest first; ties by id) and the "
                        "cursor of the next page, null on the last.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["posts", "next_cursor"],
                                    "properties": {
                                        "posts": {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/ArchivedPost"},
                                        },
                                        "next_cursor": _NULLABLE_STRING,
                                    },
                                }
                            }
                        },
                    },
                    "400": error_response(
                        "An unknown filter, a malformed time range, a bad value or cursor, or "
                        "a query over its time budget."
                    ),
                    **common,
                },
                "security": [{"bearer": []}],
            }
        },
        "/api/v1/posts/summary": {
            "get": {
                "summary": "Explore's charts of the filtered archived posts",
                "operationId": "postsSummary",
                "parameters": FILTERS,
                "responses": {
                    "200": {
                        "description": "Sentiment over time, clusters, hashtags, word-cloud terms.",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/PostsSummary"}
                            }
                        },
                    },
                    "400": error_response(
                        "A bad filter, or too many posts or too long a query: narrow it."
                    ),
                    **common,
                },
                "security": [{"bearer": []}],
            }
        },
        "/api/v1/posts/{post_id}/corrections": {"post": _corrections_operation(error_response)},
    }


def _corrections_operation(error_response: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    from models.corrections import FIELDS, MAX_TOPIC_CHARS

    value = {"type": "string", "nullable": True}
    correction = {
        "type": "object",
        "nullable": True,
        "description": "The correction kept (null: taken back).",
        "properties": {
            "value": _STRING,
            "model_value": {**_STRING, "description": "What the models said when corrected."},
            "by": _STRING,
            "at": {**_NUMBER, "description": "Epoch seconds."},
            "revisions": {"type": "integer", "description": "Times this field was corrected."},
        },
    }
    return {
        "summary": "Correct an archived post's sentiment label or topic",
        "description": "The last correction of a field wins and is kept with who made it "
        "(the token's name) and when. Corrections are training data for `socialpulse "
        "train`; a fifth of posts (by a digest of the id) are kept aside for `socialpulse "
        "evaluate corrections`.",
        "operationId": "correctPost",
        "parameters": [
            {"name": "post_id", "in": "path", "required": True, "schema": _STRING},
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "minProperties": 1,
                        "additionalProperties": False,
                        "properties": {
                            "sentiment": {**value, "enum": [*SENTIMENT_LABELS, "", None]},
                            "topic": {
                                **value,
                                "maxLength": MAX_TOPIC_CHARS,
                                "description": 'A topic\'s name; "" or null takes it back.',
                            },
                        },
                    }
                }
            },
        },
        "responses": {
            "200": {
                "description": "The corrections saved.",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "post_id": _STRING,
                                "corrections": {
                                    "type": "object",
                                    "properties": {field: correction for field in FIELDS},
                                },
                            },
                        }
                    }
                },
            },
            "400": error_response("An unknown field, label or an unusable topic name."),
            "401": error_response("No API token, or an unknown or revoked one."),
            "403": error_response("The token lacks the `correct` scope or the analyst role."),
            "404": error_response("No archived post has this id."),
            "415": error_response("The body is not JSON."),
            "503": error_response("The archive is off or its database unavailable."),
        },
        "security": [{"bearer": []}],
    }
