"""The HTTP API over a real socket: tasks, missions, agents, approvals, status, errors."""

from __future__ import annotations

import httpx

from polpo.app import Polpo
from polpo.clock import FakeClock


async def test_health(api: httpx.AsyncClient) -> None:
    r = await api.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] is True and body["project"] == "demo"
    assert body["version"] and body["uptime"] >= 0


async def test_tasks_create_list_show_cancel(api: httpx.AsyncClient, clock: FakeClock) -> None:
    r = await api.post("/tasks", json={"title": "Write docs", "agent": "writer"})
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["status"] == "pending" and task["agent"] == "writer"
    assert task["createdBy"] == "api"
    clock.advance(1)
    await api.post("/tasks", json={"title": "Second", "dependsOn": [task["shortId"]]})

    listed = (await api.get("/tasks")).json()
    assert [t["title"] for t in listed] == ["Second", "Write docs"]
    assert listed[0]["dependsOn"] == [task["id"]]
    only_writer = (await api.get("/tasks", params={"agent": "writer"})).json()
    assert [t["title"] for t in only_writer] == ["Write docs"]
    assert len((await api.get("/tasks", params={"limit": 1})).json()) == 1

    shown = (await api.get(f"/tasks/{task['shortId'].upper()}")).json()
    assert shown["id"] == task["id"] and shown["approvals"] == []

    r = await api.post(f"/tasks/{task['shortId']}/cancel", json={"reason": "dup"})
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert r.json()["error"] == "dup"
    cancelled = (await api.get("/tasks", params={"status": "cancelled,failed"})).json()
    assert [t["id"] for t in cancelled] == [task["id"]]

    r = await api.post(f"/tasks/{task['shortId']}/cancel")
    assert r.status_code == 409
    assert "cancelled is final" in r.json()["error"]
    r = await api.post(f"/tasks/{task['shortId']}/retry")
    assert r.status_code == 409


async def test_errors_are_short_json(api: httpx.AsyncClient, app: Polpo) -> None:
    r = await api.get("/tasks/zzzz")
    assert (r.status_code, r.json()) == (404, {"error": "no task matches 'zzzz'"})

    r = await api.post("/tasks", json={"title": "x", "agent": "ghost"})
    assert r.status_code == 422 and "unknown agent 'ghost'" in r.json()["error"]

    r = await api.post("/tasks", json={"titel": "typo"})
    assert r.status_code == 422
    assert r.json()["error"].startswith("title: ")
    assert "titel" in r.json()["error"]

    r = await api.get("/tasks", params={"status": "todo"})
    assert r.status_code == 422 and "unknown task status" in r.json()["error"]

    r = await api.get("/nothing-here")
    assert r.status_code == 404 and "error" in r.json()

    # ambiguity: two ids sharing a prefix, forced
    from polpo.store.tables import tasks

    async with app.store.write() as conn:
        for full, short in (("qqqq1111aaaaaaaa", "qqqq1"), ("qqqq2222bbbbbbbb", "qqqq2")):
            await conn.execute(
                tasks.insert().values(
                    id=full,
                    short_id=short,
                    title=short,
                    depends_on=[],
                    status="pending",
                    feedback=[],
                    created_by="test",
                    created_at=1.0,
                    updated_at=1.0,
                )
            )
    r = await api.get("/tasks/qqqq")
    assert r.status_code == 409
    assert r.json()["candidates"] == ["qqqq1111aaaaaaaa", "qqqq2222bbbbbbbb"]


async def test_missions(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/missions",
        json={
            "name": "Launch",
            "goal": "v1",
            "tasks": ["Design", {"title": "Build", "agent": "coder", "dependsOn": [0]}],
        },
    )
    assert r.status_code == 201, r.text
    m = r.json()
    assert m["status"] == "draft" and m["progress"] == {"done": 0, "total": 2}
    assert [t["title"] for t in m["tasks"]] == ["Design", "Build"]
    assert m["tasks"][1]["dependsOn"] == [m["tasks"][0]["id"]]

    shown = (await api.get(f"/missions/{m['shortId']}")).json()
    assert [t["position"] for t in shown["tasks"]] == [0, 1]
    started = (await api.post(f"/missions/{m['shortId']}/start")).json()
    assert started["status"] == "active"
    assert [
        x["name"] for x in (await api.get("/missions", params={"status": "active"})).json()
    ] == ["Launch"]
    cancelled = (await api.post(f"/missions/{m['id']}/cancel")).json()
    assert cancelled["status"] == "cancelled"
    assert {t["status"] for t in cancelled["tasks"]} == {"cancelled"}

    r = await api.post(
        "/missions", json={"name": "Bad", "tasks": [{"title": "a", "dependsOn": [3]}]}
    )
    assert r.status_code == 422 and "may only depend on earlier" in r.json()["error"]


async def test_agents_and_status(api: httpx.AsyncClient, app: Polpo) -> None:
    task = await app.tasks.add("Busy", agent="coder")
    async with app.ctx.tx() as tx:
        await app.tasks.transition(tx, task, "running")
    agents = {a["name"]: a for a in (await api.get("/agents")).json()}
    assert agents["coder"]["status"] == "active"
    assert agents["coder"]["runningTasks"][0]["title"] == "Busy"
    assert agents["writer"]["status"] == "idle"
    status = (await api.get("/status")).json()
    assert status["project"] == "demo"
    assert status["tasks"]["running"] == 1 and status["pendingApprovals"] == 0


async def test_approvals_approve_and_reject(api: httpx.AsyncClient, app: Polpo) -> None:
    t1 = await app.tasks.add("One")
    t2 = await app.tasks.add("Two")
    a1 = await app.approvals.request(t1.id, gate="review", hook="task:complete", summary="diff 1")
    a2 = await app.approvals.request(t2.id, gate="review", hook="task:complete")

    pending = (await api.get("/approvals")).json()
    assert {a["id"] for a in pending} == {a1.id, a2.id}
    assert (await api.get(f"/approvals/{a1.short_id}")).json()["summary"] == "diff 1"

    r = await api.post(f"/approvals/{a1.short_id}/approve", json={"by": "dashboard"})
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["resolvedBy"]) == ("approved", "dashboard")
    assert (await app.tasks.get(t1.id)).status == "done"

    r = await api.post(f"/approvals/{a1.short_id}/approve")
    assert r.status_code == 409
    body = r.json()
    assert body["status"] == "approved" and body["resolvedBy"] == "dashboard"
    assert "already approved" in body["error"]

    r = await api.post(f"/approvals/{a2.short_id}/reject", json={})
    assert r.status_code == 422 and body["error"]
    r = await api.post(f"/approvals/{a2.short_id}/reject", json={"reason": "   "})
    assert r.status_code == 422 and "needs a reason" in r.json()["error"]
    r = await api.post(f"/approvals/{a2.short_id}/reject", json={"reason": "add tests"})
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    revised = await app.tasks.get(t2.id)
    assert revised.status == "pending" and revised.feedback[0]["feedback"] == "add tests"
    assert revised.feedback[0]["by"] == "api"

    assert (await api.get("/approvals")).json() == []
    done = (await api.get("/approvals", params={"status": "all"})).json()
    assert {a["status"] for a in done} == {"approved", "rejected"}


async def test_openapi_schema_describes_the_bodies(api: httpx.AsyncClient) -> None:
    schema = (await api.get("/openapi.json")).json()
    reject = schema["components"]["schemas"]["RejectBody"]
    assert "reason" in reject["required"]
    assert "/api/v1/approvals/{ref}/reject" in schema["paths"]
