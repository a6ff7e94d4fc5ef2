"""The request id of the request being served, for every log line written while serving it."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

request_id_var: ContextVar[str] = ContextVar("keen_request_id", default="-")

LOG_FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"
ACCESS_FORMAT = (
    '%(asctime)s %(levelname)s [%(request_id)s] %(client_addr)s "%(request_line)s" %(status_code)s'
)


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to each record (`-` outside a request) so formats can show it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


def uvicorn_log_config(level: str = "info") -> dict[str, Any]:
    """uvicorn's logging with the request id in every line (its access log included)."""
    filters = {"request_id": {"()": "keen.server.logs.RequestIdFilter"}}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": filters,
        "formatters": {
            "default": {"()": "uvicorn.logging.DefaultFormatter", "fmt": LOG_FORMAT, "use_colors": False},
            "access": {"()": "uvicorn.logging.AccessFormatter", "fmt": ACCESS_FORMAT, "use_colors": False},
        },
        "handlers": {
            "default": {
                "formatter": "default",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "filters": ["request_id"],
            },
            "access": {
                "formatter": "access",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "filters": ["request_id"],
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"handlers": ["access"], "level": level.upper(), "propagate": False},
            "keen": {"handlers": ["default"], "level": level.upper(), "propagate": False},
        },
    }
