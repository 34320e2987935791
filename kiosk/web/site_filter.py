"""The site filter of the report pages (a central server's sites, kiosk.reports.sites).

?site=NAME (repeatable) shows only that site's rows; links between report pages keep it
(keep_site). A manager limited to sites (store.set_user_sites) gets only their sites, whatever the
URL asks (report_sites); people whose home site is elsewhere are not found (person_shown).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from flask import g, has_request_context, request

from kiosk.config import SiteRules
from kiosk.errors import ReportError
from kiosk.reports.sites import known_sites
from kiosk.store import home_sites
from kiosk.web.context import ctx, current_user

logger = logging.getLogger(__name__)

MAX_SITE_ARGS = 20  # ?site= values one request may name


@dataclass(frozen=True)
class SiteChoice:
    """The site filter of a request: the sites (None: every site) and whether the URL named them
    (strict: a site no door has is an error; a manager's own limit is applied silently)."""

    sites: frozenset[str] | None
    strict: bool


def report_sites() -> SiteChoice:
    """This request's site filter: ?site= values within the signed-in manager's sites (a manager
    limited to sites who names another gets a ReportError), else the manager's sites, else none."""
    cached: SiteChoice | None = g.get("site_choice")
    if cached is not None:
        return cached
    asked = {" ".join(v.split())[:100] for v in request.args.getlist("site")[:MAX_SITE_ARGS]} - {""}
    user = current_user()
    limit = user.site_limit if user is not None else None
    if asked:
        if limit is not None and not asked <= limit:
            raise ReportError(f"you may see only the sites {', '.join(sorted(limit))}; "
                              f"not {', '.join(sorted(asked - limit))}")
        choice = SiteChoice(frozenset(asked), True)
    else:
        choice = SiteChoice(limit, False)
    g.site_choice = choice
    return choice


def keep_site(endpoint: str, values: dict[str, object]) -> None:
    """(url_defaults of the reports' blueprint) Links from one report page to another keep the request's ?site= values."""
    if has_request_context() and "site" not in values and request.args.get("site"):
        values["site"] = request.args.getlist("site")[:MAX_SITE_ARGS]


@dataclass(frozen=True)
class SiteBar:
    """The site links of a central's report page: the sites this user may see, those shown now,
    and whether the user is limited (then there is no "all")."""

    sites: list[str]
    chosen: frozenset[str]
    limited: bool

    def query(self, site: str) -> str:
        """This request's query string with ?site= replaced by site ("" : no site)."""
        args = [(k, v) for k, v in request.args.items(multi=True) if k != "site"]
        if site:
            args.append(("site", site))
        return "?" + urlencode(args) if args else ""


def site_bar_context() -> dict[str, object]:
    """(context processor of the reports' blueprint) site_bar: a SiteBar on a central, else None."""
    c = ctx()
    user = current_user()
    if c.settings.role != "central" or user is None:
        return {"site_bar": None}
    limit = user.site_limit
    try:
        chosen = report_sites().sites or frozenset()
    except ReportError:  # rendering the error page of that very request
        chosen = frozenset()
    sites = [x for x in known_sites(c.db, c.settings) if limit is None or x in limit]
    return {"site_bar": SiteBar(sites, chosen, limit is not None)}


def person_shown() -> Callable[[int], bool]:
    """Whether a person belongs to this request's site filter (their home site now); always
    True without a filter."""
    sites = report_sites().sites
    if sites is None:
        return lambda _pid: True
    c = ctx()
    home = home_sites(c.db, c.clock.now())
    return lambda pid: home.get(pid) in sites


def home_rules_of() -> Callable[[int], SiteRules]:
    """Each person's home site's rules (work days, holidays, zone) as of now on a central with
    `sites:`; site:'s for everyone elsewhere."""
    c = ctx()
    default = c.settings.rules_of(None)
    if c.settings.role != "central" or not c.settings.sites:
        return lambda _pid: default
    home = home_sites(c.db, c.clock.now())
    rules: dict[str | None, SiteRules] = {name: c.settings.rules_of(name) for name in c.settings.sites}
    return lambda pid: rules.get(home.get(pid), default)
