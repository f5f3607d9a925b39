"""``millrace sites …``: which alias of a model each edge site runs, assigned to one site or
to a site group, beside what the site last reported (rich tables, ``--json`` for scripts)."""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer
from rich.table import Table

from millrace_cli.catalog import (
    REGISTRY,
    CliError,
    JsonOpt,
    RegistryOpt,
    call,
    console,
    emit,
    fmt,
    guarded,
)

sites_app = typer.Typer(
    help="Site deployments: which model alias each edge site runs.", no_args_is_help=True
)
SiteOpt = Annotated[str | None, typer.Option("--site", help="one site")]
GroupOpt = Annotated[str | None, typer.Option("--group", help="a site group (every member)")]
ReasonOpt = Annotated[str, typer.Option(help="why (recorded in the model's audit log)")]
ActorOpt = Annotated[str, typer.Option(help="who")]
USER = os.environ.get("USER", "cli")


def deployments_text(site: dict[str, Any]) -> str:
    return ", ".join(f"{s['model']}@{s['alias']}" for s in site["status"]) or "-"


def in_sync_text(site: dict[str, Any]) -> str:
    if not site["status"]:
        return "-"
    return "yes" if all(s["in_sync"] for s in site["status"]) else "[yellow]no[/]"


def last_seen(site: dict[str, Any]) -> str:
    return str((site.get("reported") or {}).get("received_at") or "never")[:19]


def sites_table(sites: list[dict[str, Any]]) -> Table:
    table = Table("site", "groups", "follows", "in sync", "last seen")
    for site in sites:
        table.add_row(
            site["site_id"],
            ", ".join(site["groups"]) or "-",
            deployments_text(site),
            in_sync_text(site),
            last_seen(site),
        )
    return table


def site_table(site: dict[str, Any]) -> Table:
    groups = ", ".join(site["groups"]) or "no group"
    table = Table(
        "model",
        "alias",
        "via",
        "should run",
        "reports",
        "in sync",
        title=f"site {site['site_id']} ({groups}; last seen {last_seen(site)})",
    )
    via = {d["model"]: d["via"] for d in site["deployments"]}
    for s in site["status"]:
        table.add_row(
            s["model"],
            s["alias"],
            via.get(s["model"], "-"),
            f"v{s['should_run']}" if s["should_run"] else "-",
            f"v{s['reports']}" if s["reports"] else "-",
            "yes" if s["in_sync"] else "[yellow]no[/]",
        )
    return table


def deployment_url(registry: str, *, model: str, site: str | None, group: str | None) -> str:
    """The deployment route of exactly one site or one group."""
    if (site is None) == (group is None):
        raise CliError("name one target: --site SITE or --group GROUP")
    if site is not None:
        return f"{registry}/v1/sites/{site}/deployments/{model}"
    return f"{registry}/v1/site-groups/{group}/deployments/{model}"


def print_result(doc: dict[str, Any], *, as_json: bool, line: str) -> None:
    if as_json:
        console.print_json(json.dumps(doc, default=str))
    else:
        console.print(line)


@sites_app.command("list")
def sites_list(
    registry: RegistryOpt = REGISTRY,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option()] = 100,
) -> None:
    """Every known site: its groups, what it follows, whether it runs it, when last seen."""
    found = guarded(lambda: call("GET", f"{registry}/v1/sites", params={"limit": limit}))
    emit(found, as_json=as_json, table=sites_table)


@sites_app.command("show")
def sites_show(site: str, registry: RegistryOpt = REGISTRY, as_json: JsonOpt = False) -> None:
    """One site: per model, the version it should run beside the one it reports."""
    doc = guarded(lambda: call("GET", f"{registry}/v1/sites/{site}"))
    emit(doc, as_json=as_json, table=site_table)


@sites_app.command("assign")
def sites_assign(
    model: str,
    alias: Annotated[str, typer.Option(help="the model's alias to follow, e.g. production")],
    reason: ReasonOpt,
    site: SiteOpt = None,
    group: GroupOpt = None,
    actor: ActorOpt = USER,
    registry: RegistryOpt = REGISTRY,
    as_json: JsonOpt = False,
) -> None:
    """A site, or every site of a group, follows MODEL's alias; manifests are written now."""
    body = {"alias": alias, "reason": reason, "actor": actor}
    doc = guarded(
        lambda: call(
            "PUT", deployment_url(registry, model=model, site=site, group=group), json=body
        )
    )
    if site is not None:
        target = next((m for m in doc["models"] if m["name"] == model), None)
        version = f"v{target['version']}" if target else "nothing yet"
        line = f"site {site} follows {model}@{alias} → {version} ({doc['manifest_key']} written)"
    else:
        line = (
            f"group {group} follows {model}@{alias}; manifests written for "
            f"{len(doc['manifests_written'])} sites: {', '.join(doc['manifests_written']) or '-'}"
        )
    print_result(doc, as_json=as_json, line=line)


@sites_app.command("unassign")
def sites_unassign(
    model: str,
    reason: ReasonOpt,
    site: SiteOpt = None,
    group: GroupOpt = None,
    actor: ActorOpt = USER,
    registry: RegistryOpt = REGISTRY,
    as_json: JsonOpt = False,
) -> None:
    """Remove a site's or a group's deployment of MODEL.

    Its agents keep serving the model they have (last-known-good), no longer updated."""
    params = {"reason": reason, "actor": actor}
    doc = guarded(
        lambda: call(
            "DELETE", deployment_url(registry, model=model, site=site, group=group), params=params
        )
    )
    where = f"site {site}" if site is not None else f"group {group}"
    print_result(
        doc,
        as_json=as_json,
        line=f"{where} no longer follows {model}@{fmt(doc['removed_alias'])}",
    )
