"""Request bodies checked against Azure's published REST contract, as the Azure SDK packages carry it.

armsim must not accept what Azure would refuse: a key the contract does not have (an initiate port's
``duration``, a plural prefix list where the contract has one prefix), a value of the wrong type, a
required member left out. The contract is not written here by hand: it is read from the models of
the installed SDK packages, which are generated from the REST specifications
(github.com/Azure/azure-rest-api-specs, MIT):

* Microsoft.Security 2020-01-01 (``jitNetworkAccessPolicies.json``): the msrest models of
  ``azure.mgmt.security.v2020_01_01`` (``_attribute_map``: REST names, flattened ``properties.*``
  keys and types; ``_validation``: required, read-only, minimum/maximum).
* Microsoft.Network security rules and NSGs: the models of ``azure.mgmt.network`` (REST names and
  visibility of each field; types from their annotations).

Azure's services deserialize with Json.NET: member names match case-insensitively, read-only
members in a request are ignored, and a failure is a 400 ``InvalidRequestContent`` whose message
quotes Json.NET ("Could not find member 'x' on object of type 'T'. Path '...'"). See README.md,
"Request validation".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from armsim.arm import ArmError


class ContractError(ValueError):
    """A body that does not follow the contract; the message is the one Azure's Json.NET gives."""


@dataclass
class Field:
    name: str  # the REST name
    kind: str  # str, int, bool, iso, dict, any, list, model
    item: Field | None = None  # of a list
    model: str | None = None  # of a model field (or a list item)
    required: bool = False
    readonly: bool = False
    minimum: int | None = None
    maximum: int | None = None


@dataclass
class Schema:
    name: str
    fields: dict[str, Field] = field(default_factory=dict)  # lower-case REST name -> field


_REGISTRY: dict[str, Schema] = {}


# --- from msrest models (azure.mgmt.security.v2020_01_01) --------------------------------------


def _msrest_field(name: str, type_text: str) -> Field:
    if type_text.startswith("[") and type_text.endswith("]"):
        item = _msrest_field(name, type_text[1:-1])
        return Field(name, "list", item=item)
    if type_text.startswith("{"):
        return Field(name, "dict")
    simple = {"str": "str", "int": "int", "long": "int", "bool": "bool", "iso-8601": "iso", "object": "any", "float": "any"}
    if type_text in simple:
        return Field(name, simple[type_text])
    return Field(name, "model", model=type_text)


def _split_key(key: str) -> list[str]:
    return [part.replace("\\.", ".") for part in re.split(r"(?<!\\)\.", key)]


def from_msrest(cls: type, module: Any) -> Schema:
    """The schema of an msrest model and, recursively, of the models it uses."""
    if cls.__name__ in _REGISTRY:
        return _REGISTRY[cls.__name__]
    schema = Schema(cls.__name__)
    _REGISTRY[cls.__name__] = schema
    validation = getattr(cls, "_validation", {}) or {}
    for attr, spec in cls._attribute_map.items():
        parts = _split_key(spec["key"])
        rules = validation.get(attr, {})
        leaf = _msrest_field(parts[-1], spec["type"])
        leaf.required = bool(rules.get("required"))
        leaf.readonly = bool(rules.get("readonly"))
        leaf.minimum, leaf.maximum = rules.get("minimum"), rules.get("maximum")
        target = schema
        for depth, part in enumerate(parts[:-1]):  # a flattened "properties.x": a nested object
            nested_name = cls.__name__ + "".join(p[:1].upper() + p[1:] for p in parts[: depth + 1])
            existing = target.fields.get(part.lower())
            if existing is None:
                existing = Field(part, "model", model=nested_name)
                target.fields[part.lower()] = existing
                _REGISTRY.setdefault(nested_name, Schema(nested_name))
            target = _REGISTRY[existing.model]
        target.fields[leaf.name.lower()] = leaf
        for model_name in {leaf.model, leaf.item.model if leaf.item else None} - {None}:
            model_cls = getattr(module, model_name, None)
            if isinstance(model_cls, type) and hasattr(model_cls, "_attribute_map"):
                from_msrest(model_cls, module)
            else:  # an enum: a string
                _retype_as_string(leaf)
    return schema


def _retype_as_string(leaf: Field) -> None:
    if leaf.kind == "model":
        leaf.kind, leaf.model = "str", None
    elif leaf.item is not None and leaf.item.kind == "model":
        leaf.item.kind, leaf.item.model = "str", None


# --- from model_base models (azure.mgmt.network) ------------------------------------------------


def _annotation_field(name: str, text: str, module: Any) -> Field:
    text = re.sub(r"ForwardRef\('([^']*)'(?:, module='[^']*')?\)", r"\1", text.replace("typing.", ""))
    text = re.sub(r"<class '(?:builtins\.)?([\w.]+)'>", r"\1", text).strip().strip("\"'")
    optional = re.fullmatch(r"Optional\[(.*)\]", text)
    if optional:
        return _annotation_field(name, optional.group(1), module)
    listed = re.fullmatch(r"(?:List|list)\[(.*)\]", text)
    if listed:
        return Field(name, "list", item=_annotation_field(name, listed.group(1), module))
    if re.match(r"(?:Dict|dict)\[", text):
        return Field(name, "dict")
    if text.startswith("Union[str"):
        return Field(name, "str")
    if text in ("int", "bool", "str"):
        return Field(name, text)
    if text.startswith("datetime"):
        return Field(name, "iso")
    model_name = text.split(".")[-1]
    model_cls = getattr(module, model_name, None)
    if isinstance(model_cls, type) and hasattr(model_cls, "_attr_to_rest_field") or _is_model_base(model_cls):
        from_model_base(model_cls, module)
        return Field(name, "model", model=model_name)
    return Field(name, "any")


def _is_model_base(cls: Any) -> bool:
    return isinstance(cls, type) and any(base.__name__ == "Model" and "model_base" in base.__module__ for base in cls.__mro__)


def from_model_base(cls: type, module: Any) -> Schema:
    """The schema of a TypeSpec-generated (model_base) model and of the models it uses."""
    if cls.__name__ in _REGISTRY:
        return _REGISTRY[cls.__name__]
    schema = Schema(cls.__name__)
    _REGISTRY[cls.__name__] = schema
    cls()  # the generated base class maps attributes to REST fields on first use
    annotations: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        annotations.update({key: str(value) for key, value in klass.__dict__.get("__annotations__", {}).items()})
    for attr, rest_field in cls._attr_to_rest_field.items():  # type: ignore[attr-defined]
        rest_name = rest_field._rest_name
        leaf = _annotation_field(rest_name, annotations.get(attr, "Any"), module)
        leaf.readonly = list(rest_field._visibility or []) == ["read"]
        schema.fields[rest_name.lower()] = leaf
    return schema


# --- validation ---------------------------------------------------------------------------------


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, (int, float)):
        return "Number"
    if isinstance(value, str):
        return "String"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, dict):
        return "Object"
    return "Null"


NET_TYPES = {"str": "System.String", "int": "System.Int32", "bool": "System.Boolean", "iso": "System.DateTime"}


def _fail_convert(value: Any, type_name: str, path: str) -> None:
    shown = value if isinstance(value, (int, float, str)) and not isinstance(value, bool) else _json_type(value)
    raise ContractError(f"Error converting value {shown!r} to type '{type_name}'. Path '{path}'.")


def _check_value(value: Any, spec: Field, path: str) -> None:
    if value is None:
        return  # null: "not given" for Json.NET
    kind = spec.kind
    if kind == "list":
        if not isinstance(value, list):
            raise ContractError(f"Cannot deserialize the current JSON {_json_type(value).lower()} into type 'List'. Path '{path}'.")
        for index, item in enumerate(value):
            _check_value(item, spec.item or Field(spec.name, "any"), f"{path}[{index}]")
        return
    if kind == "model":
        if not isinstance(value, dict):
            raise ContractError(f"Cannot deserialize the current JSON {_json_type(value).lower()} into type '{spec.model}'. Path '{path}'.")
        validate(value, _REGISTRY[spec.model or ""], path)
        return
    if kind == "dict":
        if not isinstance(value, dict):
            _fail_convert(value, "Dictionary", path)
        return
    if kind == "int":
        if isinstance(value, (bool, dict, list)):
            _fail_convert(value, NET_TYPES["int"], path)
        if isinstance(value, float) and not value.is_integer():
            _fail_convert(value, NET_TYPES["int"], path)
        if isinstance(value, str) and not re.fullmatch(r"[+-]?[0-9]+", value.strip()):
            _fail_convert(value, NET_TYPES["int"], path)
        number = int(value if not isinstance(value, str) else value.strip())
        if not -(2**31) <= number < 2**31:
            _fail_convert(value, NET_TYPES["int"], path)
        return  # minimum/maximum are the service's own checks, with its own codes (InvalidPortNumber)
    if kind == "bool":
        if not isinstance(value, bool) and not (isinstance(value, str) and value.lower() in ("true", "false")):
            _fail_convert(value, NET_TYPES["bool"], path)
        return
    if kind == "str":
        if isinstance(value, (dict, list)):
            _fail_convert(value, NET_TYPES["str"], path)
        return
    if kind == "iso" and (not isinstance(value, str) or not _is_iso(value)):
        _fail_convert(value, NET_TYPES["iso"], path)


def _is_iso(text: str) -> bool:
    candidate = re.sub(r"(\.\d{1,6})\d*", r"\1", text.strip()).replace("Z", "+00:00").replace("z", "+00:00")
    try:
        datetime.fromisoformat(candidate)
    except ValueError:
        return False
    return True


def validate(body: Any, schema: Schema, path: str = "") -> None:
    """Raise :class:`ContractError` when ``body`` does not follow ``schema``."""
    if not isinstance(body, dict):
        raise ContractError(f"Cannot deserialize the current JSON {_json_type(body).lower()} into type '{schema.name}'. Path '{path}'.")
    for key, value in body.items():
        spec = schema.fields.get(str(key).lower())
        where = f"{path}.{key}" if path else str(key)
        if spec is None:
            raise ContractError(f"Could not find member '{key}' on object of type '{schema.name}'. Path '{where}'.")
        if spec.readonly:
            continue  # ignored in a request, as Azure does
        _check_value(value, spec, where)
    for spec in schema.fields.values():
        if spec.required and not spec.readonly and body.get(_key_in(body, spec.name)) is None:
            raise ContractError(f"Required property '{spec.name}' not found in JSON. Path '{path}'.")


def canonical(body: Any, contract: Schema) -> Any:
    """``body`` (valid) with every member named as the contract spells it (Json.NET matched it
    case-insensitively: ``VirtualMachines`` is ``virtualMachines``)."""
    if not isinstance(body, dict):
        return body
    result = {}
    for key, value in body.items():
        spec = contract.fields[str(key).lower()]
        named = value
        if spec.kind == "model" and spec.model:
            named = canonical(value, _REGISTRY[spec.model])
        elif spec.kind == "list" and spec.item is not None and spec.item.kind == "model" and isinstance(value, list):
            named = [canonical(item, _REGISTRY[spec.item.model or ""]) for item in value]
        result[spec.name] = named
    return result


def _key_in(body: dict, name: str) -> str:
    return next((key for key in body if str(key).lower() == name.lower()), name)


# --- the contracts armsim checks ----------------------------------------------------------------


def _security_schemas() -> tuple[Schema, Schema]:
    from azure.mgmt.security.v2020_01_01 import models as security

    return from_msrest(security.JitNetworkAccessPolicy, security), from_msrest(security.JitNetworkAccessPolicyInitiateRequest, security)


def from_model(cls: type, module: Any) -> Schema:
    """The schema of a model of either generation of the SDK (msrest or model_base)."""
    return from_msrest(cls, module) if hasattr(cls, "_attribute_map") else from_model_base(cls, module)


def _network_schemas() -> tuple[Schema, Schema]:
    # azure-mgmt-network 29+ is TypeSpec-generated (model_base); older releases (azure.azcollection
    # pins 28) are msrest: both carry the same contract
    from azure.mgmt.network import models as network

    return from_model(network.NetworkSecurityGroup, network), from_model(network.SecurityRule, network)


JIT_POLICY, JIT_INITIATE = _security_schemas()
NETWORK_SECURITY_GROUP, SECURITY_RULE = _network_schemas()


def _bastion_schemas() -> tuple[Schema, Schema]:
    from azure.mgmt.network import models as network

    return from_model(network.BastionHost, network), from_model(network.VirtualNetworkPeering, network)


BASTION_HOST, VIRTUAL_NETWORK_PEERING = _bastion_schemas()


def _checked(body: Any, contract: Schema, code: str, prefix: str) -> Any:
    """``body`` named as the contract spells it, when it follows the contract; else a 400 ``code``."""
    try:
        validate(body, contract)
    except ContractError as exc:
        raise ArmError(400, code, prefix % exc) from None
    return canonical(body, contract)


def security_body(body: Any, contract: Schema) -> Any:
    """``body`` when it follows the Microsoft.Security contract, else Azure's 400."""
    return _checked(body, contract, "InvalidRequestContent", "The request content was invalid and could not be deserialized: '%s'")


def network_body(body: Any, contract: Schema) -> Any:
    """``body`` when it follows the Microsoft.Network contract, else NRP's 400 (see README)."""
    return _checked(body, contract, "InvalidRequestFormat", "Cannot parse the request. %s")
