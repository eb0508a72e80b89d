"""Project commands: ``polpo init``, ``polpo config check``, ``polpo status``, ``polpo agents``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from polpo.cli.common import (
    cli_state,
    console,
    esc,
    load,
    print_json,
    table,
    with_app,
)

if TYPE_CHECKING:
    from polpo.app import Polpo
    from polpo.config import PolpoConfig

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

#: Written next to polpo.json so the database and credentials stay out of git.
POLPO_GITIGNORE = (
    "# Written by polpo init: local state, never commit it.\npolpo.db*\nwhatsapp/\nserve.json\n"
)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("status")(status)
    app.command("agents")(agents)
    config_app = typer.Typer(help="Inspect the project config.", no_args_is_help=True)
    config_app.command("check")(config_check)
    app.add_typer(config_app, name="config")


def init(
    ctx: typer.Context,
    project: Annotated[
        str | None,
        typer.Option(
            "--project", metavar="NAME", help="Project name (default: the directory's name)."
        ),
    ] = None,
) -> None:
    """Write a starter .polpo/polpo.json (refuses to overwrite one)."""
    from polpo.config import CONFIG_DIR, CONFIG_FILE, find_config_path, starter_config
    from polpo.errors import ConfigError
    from polpo.private_files import private_dir

    path = find_config_path(cli_state(ctx).config_path)
    if path.exists():
        raise ConfigError(
            f"{path} already exists; edit it, or remove it first to start over",
            source=str(path),
        )
    root = path.parent.parent if path.parent.name == CONFIG_DIR else path.parent
    name = (project or root.name or "my-project").strip()
    if not name:
        raise ConfigError("--project must not be empty")
    try:
        if path.parent.name == CONFIG_DIR:
            private_dir(path.parent)  # 0700: the database and credentials will live here
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(starter_config(name), encoding="utf-8")
        if path.parent.name == CONFIG_DIR:
            ignore = path.parent / ".gitignore"
            if not ignore.exists():
                ignore.write_text(POLPO_GITIGNORE, encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot write {path}: {e}") from e
    shown = _relative(path)
    out = console()
    out.print(f"Created {esc(shown)} for project {esc(name)!r}.")
    if path.name != CONFIG_FILE or path.parent.name != CONFIG_DIR:
        out.print(f"Use it with --config {esc(shown)} (or POLPO_CONFIG).")
    out.print("Next: edit it (agents, models, channels), then run `polpo serve`.")


def config_check(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Validate the config and print a summary and warnings; exit 2 naming each problem."""
    import sys

    from polpo.errors import ConfigError
    from polpo.runner.sandbox import sandbox_warnings

    try:
        loaded = load(ctx)
    except ConfigError as e:
        if not e.issues:
            raise
        if as_json:
            print_json(
                {
                    "ok": False,
                    "source": e.source,
                    "issues": [{"path": p, "message": m} for p, m in e.issues],
                }
            )
        else:
            noun = "problem" if len(e.issues) == 1 else "problems"
            sys.stderr.write(f"Error: {e.source}: {len(e.issues)} config {noun}:\n")
            for p, m in e.issues:
                sys.stderr.write(f"  {p}: {m}\n")
        raise typer.Exit(e.exit_code) from None
    from polpo.config import config_warnings

    summary = config_summary(loaded.config)
    summary["path"] = str(loaded.path)
    from polpo.store.engine import display_url

    summary["storage"] = display_url(loaded.storage_url)  # no password on screen
    warnings = sandbox_warnings(loaded) + [f"{p}: {m}" for p, m in config_warnings(loaded.config)]
    if as_json:
        print_json({"ok": True, **summary, "warnings": warnings})
        return
    for w in warnings:
        sys.stderr.write(f"Warning: {w}\n")
    out = console()
    out.print(f"[bold]{esc(_relative(loaded.path))}[/bold] is valid.")
    out.print(f"  project   {esc(summary['project'])}")
    out.print(f"  model     {esc(summary['model'] or '(none: free-text chat is off)')}")
    out.print(f"  storage   {esc(summary['storage'])}")
    out.print(f"  server    {esc(summary['server'])}")
    agents_ = ", ".join(f"{a['name']} ({a['model'] or 'default model'})" for a in summary["agents"])
    out.print(f"  agents    {esc(agents_ or '(none)')}")
    gates = ", ".join(
        f"{g['name']} on {g['hook']} ({', '.join(g['agents']) or 'all agents'})"
        for g in summary["gates"]
    )
    out.print(f"  gates     {esc(gates or '(none)')}")
    if not summary["channels"]:
        out.print("  channels  (none)")
    for ch in summary["channels"]:
        gw = ch["gateway"]
        inbound = (
            f"inbound on, dmPolicy {gw['dmPolicy']}, allowFrom {len(gw['allowFrom'])}, "
            f"admins {len(ch['admins'])}"
            if gw["enableInbound"]
            else "inbound off (alerts only)"
        )
        out.print(f"  channel   {esc(ch['name'])} ({ch['type']}): {esc(inbound)}")
    out.print(f"  rules     {len(summary['rules'])}")


def config_summary(cfg: PolpoConfig) -> dict[str, Any]:
    from polpo.llm.models import chat_model_string

    s = cfg.settings
    return {
        "project": cfg.project,
        "model": chat_model_string(cfg),
        "server": f"{s.server.host}:{s.server.port}",
        "agents": [{"name": a.name, "model": a.model, "tools": list(a.tools)} for a in cfg.agents],
        "gates": [
            {"name": g.name, "hook": g.hook, "agents": list(g.agents)} for g in s.approval_gates
        ],
        "channels": [
            {
                "name": name,
                "type": ch.type,
                "gateway": ch.gateway.model_dump(by_alias=True),
                "admins": ch.admin_peers(),
            }
            for name, ch in s.notifications.channels.items()
        ],
        "rules": [r.model_dump(by_alias=True) for r in s.notifications.rules],
    }


def status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The project at a glance: tasks, agents, approvals, peers, channels."""

    async def go(app: Polpo) -> dict[str, Any]:
        return (await app.status()).to_dict()

    data = with_app(ctx, go)
    if as_json:
        print_json(data)
        return
    from polpo.core.models import TASK_ICONS

    out = console()
    out.print(f"[bold]{esc(data['project'])}[/bold]")
    counts = "  ".join(f"{TASK_ICONS.get(s, '')} {s} {n}" for s, n in data["tasks"].items() if n)
    out.print(f"Tasks: {counts or 'none yet'}")
    active = [a for a in data["agents"] if a["status"] == "active"]
    out.print(f"Agents: {len(active)} active, {len(data['agents']) - len(active)} idle")
    for a in active:
        titles = ", ".join(f"{t['shortId']} {t['title']}" for t in a["runningTasks"])
        out.print(f"  {esc(a['name'])}: {esc(titles)}")
    out.print(f"Pending approvals: {data['pendingApprovals']}")
    from polpo.peerid import display_peer

    peers = [display_peer(p) for p in data["connectedPeers"]]
    more = " …" if data["connectedCount"] > len(peers) else ""
    shown = f" — {esc(', '.join(peers))}{more}" if peers else ""
    out.print(f"Peers seen in the last 5 min: {data['connectedCount']}{shown}")
    if data["channels"]:
        for c in data["channels"]:
            detail = f" ({c['detail']})" if c["detail"] else ""
            out.print(f"Channel {esc(c['channel'])}: {esc(c['state'])}{esc(detail)}")
    else:
        out.print("Channels: none running")


def agents(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Agents from the config, active (with their tasks) or idle."""

    async def go(app: Polpo) -> list[dict[str, Any]]:
        return [a.to_dict() for a in await app.agents.list()]

    data = with_app(ctx, go)
    if as_json:
        print_json(data)
        return
    if not data:
        console().print('No agents configured. Add some under "agents" in .polpo/polpo.json.')
        return
    t = table("NAME", "STATUS", "MODEL", "ROLE", "RUNNING")
    for a in data:
        running = ", ".join(f"{r['shortId']} {r['title']}" for r in a["runningTasks"])
        t.add_row(esc(a["name"]), a["status"], esc(a["model"] or "-"), esc(a["role"]), esc(running))
    console().print(t)


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
