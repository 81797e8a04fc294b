"""Check JSON bodies against Datadog's official Python client models, with no unknown field.

Usage: python3 datadog_models.py MODEL=FILE ...   (MODEL: dashboard, monitor,
tag_config_create, tag_config_update). Prints one line per problem and exits 1 when there is
any, 0 when every body deserialises into its model and every key of every object is a field
of the model it landed in (the client itself keeps unknown keys as "additional properties",
so that is checked here, walking the deserialised tree, oneOf members included).
"""

import json
import sys

from datadog_api_client import Configuration
from datadog_api_client.model_utils import (
    ModelComposed,
    ModelNormal,
    UnparsedObject,
    validate_and_convert_types,
)
from datadog_api_client.v1.model.dashboard import Dashboard
from datadog_api_client.v1.model.monitor import Monitor
from datadog_api_client.v2.model.metric_tag_configuration_create_request import (
    MetricTagConfigurationCreateRequest,
)
from datadog_api_client.v2.model.metric_tag_configuration_update_request import (
    MetricTagConfigurationUpdateRequest,
)

MODELS = {
    "dashboard": Dashboard,
    "monitor": Monitor,
    "tag_config_create": MetricTagConfigurationCreateRequest,
    "tag_config_update": MetricTagConfigurationUpdateRequest,
}


def walk(obj, path, problems):
    if isinstance(obj, UnparsedObject):
        problems.append(f"{path}: matches no schema of the model")
        return
    if isinstance(obj, ModelComposed):
        inst = obj.get_oneof_instance()
        if inst is None or getattr(obj, "_unparsed", False):
            problems.append(f"{path}: matches none of {type(obj).__name__}'s schemas")
            return
        walk(inst, path, problems)
        return
    if isinstance(obj, ModelNormal):
        if getattr(obj, "_unparsed", False):
            problems.append(f"{path}: {type(obj).__name__} could not parse it")
        allowed = set(obj.attribute_map)
        for key, value in obj._data_store.items():
            if key not in allowed:
                problems.append(f"{path}.{key}: not a field of {type(obj).__name__}")
            walk(value, f"{path}.{key}", problems)
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            walk(value, f"{path}[{i}]", problems)


def main():
    config = Configuration()
    problems = []
    checked = 0
    for arg in sys.argv[1:]:
        model, _, path = arg.partition("=")
        with open(path) as f:
            data = json.load(f)
        try:
            obj = validate_and_convert_types(data, (MODELS[model],), [model], True, True, config)
        except Exception as e:  # the client's own refusal (type, enum, required field)
            problems.append(f"{path}: {type(e).__name__}: {e}")
            continue
        walk(obj, f"{path}:{model}", problems)
        checked += 1
    for p in problems:
        print(p)
    print(f"checked {checked} bodies, {len(problems)} problems", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
