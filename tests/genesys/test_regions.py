"""Regions resolve in every form an operator may write, and unknown ones are refused by name."""

from __future__ import annotations

import pytest

from exporter.genesys.regions import REGIONS, resolve_region


@pytest.mark.parametrize(
    ("form", "name"),
    [
        ("eu-west-1", "eu_west_1"),
        ("EU_WEST_1", "eu_west_1"),
        ("mypurecloud.ie", "eu_west_1"),
        ("api.mypurecloud.ie", "eu_west_1"),
        ("https://api.mypurecloud.com.au/", "ap_southeast_2"),
        ("us-east-2", "us_east_2"),
        ("eusc-de-east-1", "eusc_de_east_1"),
    ],
)
def test_region_forms(form, name):
    region = resolve_region(form)
    assert region.name == name
    assert region.login_url == region.api_url.replace("://api.", "://login.")


def test_every_region_and_unknown_ones():
    assert len(REGIONS) == 18
    assert resolve_region("us-east-1").api_url == "https://api.mypurecloud.com"
    with pytest.raises(ValueError, match="unknown region 'mars-1'"):
        resolve_region("mars-1")
