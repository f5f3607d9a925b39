"""``millrace sites …``: which alias of a model each edge site runs, assigned to one site or
to a site group, beside what the site last reported."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from millrace_cli.client import Service
from millrace_cli.errors import CliError
from millrace_cli.options import REGISTRY, USER, ActorOpt, JsonOpt, ReasonOpt, RegistryOpt
from millrace_cli.render import emit, fmt, print_json, say
from millrace_cli.views import site_grid, sites_grid

sites_app = typer.Typer(
    help="Site deployments: which model alias each edge site runs.", no_args_is_help=True
)
SiteOpt = Annotated[str | None, typer.Option("--site", help="one site")]
GroupOpt = Annotated[str | None, typer.Option("--group", help="a site group (every member)")]


def deployment(model: str, *, site: str | None, group: str | None) -> tuple[str, ...]:
    """The path of the deployment route of exactly one site or one group."""
    if (site is None) == (group is None):
        raise CliError("name one target: --site SITE or --group GROUP")
    if site is not None:
        return ("sites", site, "deployments", model)
    return ("site-groups", str(group), "deployments", model)


def result(doc: dict[str, Any], *, as_json: bool, line: str) -> None:
    if as_json:
        print_json(doc)
    else:
        say(line)


@sites_app.command("list")
def sites_list(
    registry: RegistryOpt = REGISTRY,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option()] = 100,
) -> None:
    """Every known site: its groups, what it follows, whether it runs it, when last seen."""
    found = Service(registry).get("sites", params={"limit": limit})
    emit(found, as_json=as_json, view=sites_grid)


@sites_app.command("show")
def sites_show(site: str, registry: RegistryOpt = REGISTRY, as_json: JsonOpt = False) -> None:
    """One site: per model, the version it should run beside the one it reports."""
    emit(Service(registry).get("sites", site), as_json=as_json, view=site_grid)


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
    path = deployment(model, site=site, group=group)
    body = {"alias": alias, "reason": reason, "actor": actor}
    doc = Service(registry).put(*path, body=body)
    if site is not None:
        target = next((m for m in doc["models"] if m["name"] == model), None)
        version = f"v{target['version']}" if target else "nothing yet"
        line = f"site {site} follows {model}@{alias} → {version} ({doc['manifest_key']} written)"
    else:
        written = doc["manifests_written"]
        line = (
            f"group {group} follows {model}@{alias}; manifests written for "
            f"{len(written)} sites: {', '.join(written) or '-'}"
        )
    result(doc, as_json=as_json, line=line)


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
    path = deployment(model, site=site, group=group)
    doc = Service(registry).delete(*path, params={"reason": reason, "actor": actor})
    where = f"site {site}" if site is not None else f"group {group}"
    line = f"{where} no longer follows {model}@{fmt(doc['removed_alias'])}"
    result(doc, as_json=as_json, line=line)
