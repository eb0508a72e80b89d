"""Plain records of the domain, as services return them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TASK_ICONS = {
    "pending": "⏳",
    "awaiting_approval": "✋",
    "running": "🔄",
    "done": "✅",
    "failed": "❌",
    "cancelled": "🚫",
}

MISSION_ICONS = {
    "draft": "📝",
    "active": "🔄",
    "completed": "✅",
    "failed": "❌",
    "cancelled": "🚫",
}


@dataclass(frozen=True)
class Task:
    id: str
    short_id: str
    title: str
    description: str
    agent: str | None
    mission_id: str | None
    position: int
    depends_on: list[str]
    status: str
    awaiting: str | None
    start_approved: bool
    result: str | None
    error: str | None
    revision_count: int
    feedback: list[dict[str, Any]]
    attempts: int
    created_by: str
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    lease_owner: str | None = None
    lease_until: float | None = None

    @property
    def icon(self) -> str:
        return TASK_ICONS.get(self.status, "•")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "shortId": self.short_id,
            "title": self.title,
            "description": self.description,
            "agent": self.agent,
            "missionId": self.mission_id,
            "position": self.position,
            "dependsOn": list(self.depends_on),
            "status": self.status,
            "awaiting": self.awaiting,
            "startApproved": self.start_approved,
            "result": self.result,
            "error": self.error,
            "revisionCount": self.revision_count,
            "feedback": list(self.feedback),
            "attempts": self.attempts,
            "createdBy": self.created_by,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
        }


@dataclass(frozen=True)
class Mission:
    id: str
    short_id: str
    name: str
    goal: str
    status: str
    created_by: str
    created_at: float
    updated_at: float
    finished_at: float | None
    task_count: int = 0
    done_count: int = 0
    task_ids: list[str] = field(default_factory=list)

    @property
    def icon(self) -> str:
        return MISSION_ICONS.get(self.status, "•")

    @property
    def progress(self) -> str:
        return f"{self.done_count}/{self.task_count}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "shortId": self.short_id,
            "name": self.name,
            "goal": self.goal,
            "status": self.status,
            "progress": {"done": self.done_count, "total": self.task_count},
            "taskIds": list(self.task_ids),
            "createdBy": self.created_by,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "finishedAt": self.finished_at,
        }


@dataclass(frozen=True)
class Approval:
    id: str
    short_id: str
    gate: str
    hook: str
    task_id: str
    agent: str | None
    status: str
    summary: str
    requested_at: float
    expires_at: float | None
    resolved_at: float | None
    resolved_by: str | None
    feedback: str | None
    task_title: str = ""
    task_short_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "shortId": self.short_id,
            "gate": self.gate,
            "hook": self.hook,
            "taskId": self.task_id,
            "taskShortId": self.task_short_id,
            "taskTitle": self.task_title,
            "agent": self.agent,
            "status": self.status,
            "summary": self.summary,
            "requestedAt": self.requested_at,
            "expiresAt": self.expires_at,
            "resolvedAt": self.resolved_at,
            "resolvedBy": self.resolved_by,
            "feedback": self.feedback,
        }


@dataclass(frozen=True)
class AgentView:
    name: str
    role: str
    model: str | None
    tools: list[str]
    max_concurrency: int
    running: list[Task] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "active" if self.running else "idle"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "model": self.model,
            "tools": list(self.tools),
            "maxConcurrency": self.max_concurrency,
            "status": self.status,
            "runningTasks": [
                {"id": t.id, "shortId": t.short_id, "title": t.title} for t in self.running
            ],
        }


@dataclass(frozen=True)
class Event:
    """One entry of the event log (SPEC §7)."""

    id: int
    type: str
    payload: dict[str, Any]
    created_at: float
    origin: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "payload": self.payload,
            "createdAt": self.created_at,
        }
