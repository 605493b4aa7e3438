"""The fast YAML writer of compiled configs: whatever plain data it is given, PyYAML reads back
exactly that data, and a real compiled config reads back the same too."""

import math

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from provisioning import yaml_text

scalars = (
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False)
    | st.sampled_from(["yes", "No", "ON", "null", "~", "1:20", "0x1F", "1e3", ".inf", "=", "<<",
                       "- a", "a: b", "a #b", "#x", "&a", "*a", "!t", "%x", "@x", "`x", "|", ">",
                       "'q'", '"q"', "a\nb", " lead", "trail ", "", "2001-12-14", "\u2028", "\x85",
                       "\ufeff", "type.googleapis.com/envoy.config.route.v3.Route", "/api/v1"])
)  # fmt: skip
keys = st.text(max_size=8) | scalars.filter(lambda value: isinstance(value, str))
data = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=600, deadline=None)
@given(data)
def test_pyyaml_reads_back_exactly_what_was_written(value):
    assert yaml.safe_load(yaml_text.dump(value)) == value


def test_special_floats_read_back():
    assert yaml.safe_load(yaml_text.dump([math.inf, -math.inf, 1e16, 2.5e-7])) == [
        math.inf, -math.inf, 1e16, 2.5e-7]  # fmt: skip
    assert math.isnan(yaml.safe_load(yaml_text.dump(math.nan)))


def test_reads_as_pyyaml_writes_it():
    config = {"resources": [{"name": "edge", "routes": [{"match": {"prefix": "/"}, "weight": 3}],
                             "empty": {}, "none": [], "enabled": True}]}  # fmt: skip
    assert yaml_text.dump(config) == yaml.safe_dump(config, sort_keys=False)


def test_durations_and_names_stay_readable():
    text = yaml_text.dump({"timeout": "5.000s", "name": "route-0001", "version": "1.2", "n": "1"})
    assert text == 'timeout: 5.000s\nname: route-0001\nversion: "1.2"\nn: "1"\n'
