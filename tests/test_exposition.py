from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from exporter.exposition import escape, family, labels, value_text


def test_escaping_follows_the_text_format():
    assert escape('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert labels(queue_name='Tier "2"', x="é") == 'queue_name="Tier \\"2\\"",x="é"'


def test_values_print_ints_without_a_fraction():
    assert [value_text(v) for v in (3, 3.0, 0.25, 1778752800.123)] == ["3", "3", "0.25", "1778752800.123"]


def test_empty_family_prints_nothing():
    assert family("x", "gauge", "help", []) == ""


@given(st.text(min_size=0, max_size=40), st.integers(min_value=0, max_value=10**9))
def test_any_label_value_round_trips_through_the_official_parser(name, value):
    text = family("genesys_test", "gauge", "help", [(labels(queue_name=name), value)])
    (parsed,) = text_string_to_metric_families(text)
    (sample,) = parsed.samples
    assert sample.labels == {"queue_name": name}
    assert sample.value == value
