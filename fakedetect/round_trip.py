"""The project's own YAML files (params.yaml, dvc.yaml) edited in place: ruamel's round trip, set
to their layout, so that an edit changes the values it means to and nothing else (comments, flow
lists, `null`, indentation and long lines stay as written)."""
from __future__ import annotations


def _null(representer, _):
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")


def round_trip_yaml():
    """A ruamel YAML that loads and dumps in the project's layout."""
    from ruamel.yaml import YAML

    rt = YAML()
    rt.indent(mapping=2, sequence=4, offset=2)  # "key:\n  - item"
    rt.width = 4096  # never wrap a long comment, command or flow list
    rt.preserve_quotes = True
    rt.representer.add_representer(type(None), _null)
    return rt
