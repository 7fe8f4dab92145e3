"""Genesys Cloud regions and their hosts (https://developer.genesys.cloud/platform/api/ ; the SDKs' region host tables).

A region is named `eu_west_1`, `eu-west-1` or by its domain (`mypurecloud.ie`, or `api.` +
domain); the API host is `api.<domain>` and the login host `login.<domain>`.
"""

from __future__ import annotations

from dataclasses import dataclass

REGIONS: dict[str, str] = {
    "us_east_1": "mypurecloud.com",
    "us_east_2": "use2.us-gov-pure.cloud",
    "us_west_2": "usw2.pure.cloud",
    "ca_central_1": "cac1.pure.cloud",
    "sa_east_1": "sae1.pure.cloud",
    "mx_central_1": "mxc1.pure.cloud",
    "eu_west_1": "mypurecloud.ie",
    "eu_west_2": "euw2.pure.cloud",
    "eu_central_1": "mypurecloud.de",
    "eu_central_2": "euc2.pure.cloud",
    "eusc_de_east_1": "edee1.eusc-pure.cloud",
    "me_central_1": "mec1.pure.cloud",
    "ap_south_1": "aps1.pure.cloud",
    "ap_southeast_1": "apse1.pure.cloud",
    "ap_southeast_2": "mypurecloud.com.au",
    "ap_northeast_1": "mypurecloud.jp",
    "ap_northeast_2": "apne2.pure.cloud",
    "ap_northeast_3": "apne3.pure.cloud",
}
_BY_DOMAIN = {domain: name for name, domain in REGIONS.items()}


@dataclass(frozen=True, slots=True)
class Region:
    name: str
    domain: str

    @property
    def api_url(self) -> str:
        return f"https://api.{self.domain}"

    @property
    def login_url(self) -> str:
        return f"https://login.{self.domain}"


def resolve_region(value: str) -> Region:
    """The region named by `value` in any accepted form; ValueError (one line) otherwise."""
    text = value.strip().lower().removeprefix("https://").rstrip("/")
    key = text.replace("-", "_")
    if key in REGIONS:
        return Region(key, REGIONS[key])
    domain = text.removeprefix("api.").removeprefix("login.")
    if domain in _BY_DOMAIN:
        return Region(_BY_DOMAIN[domain], domain)
    raise ValueError(
        f"unknown region {value!r}; use a region such as eu-west-1 or eu_west_1, or a domain such as "
        f"mypurecloud.ie (known: {', '.join(n.replace('_', '-') for n in REGIONS)})"
    )
