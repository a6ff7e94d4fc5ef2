"""The routers `create_app` includes, in order. A new group of routes is added here."""

from __future__ import annotations

from fastapi import APIRouter

from keen.server import ws
from keen.server.routes import admin, admin_credits, agents, auth, credits, health

ROUTERS: list[APIRouter] = [
    health.router,
    auth.router,
    admin.router,
    credits.router,
    admin_credits.router,
    agents.router,
    ws.router,
]
