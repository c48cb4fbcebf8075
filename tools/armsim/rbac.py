"""Least privilege: the RBAC action of each ARM request, and a principal's ``actions`` allow-list.

A seed principal may carry ``actions: [..]`` (a custom role's ``Actions``, ``*`` wildcards allowed,
case-insensitive as in Azure). Every ARM request it makes is mapped to its RBAC action and refused
with 403 ``AuthorizationFailed`` unless an entry matches:

* GET / HEAD   -> ``<namespace>/<type path>/read``   (Microsoft.Network/networkSecurityGroups/securityRules/read)
* PUT / PATCH  -> ``<namespace>/<type path>/write``
* DELETE       -> ``<namespace>/<type path>/delete``
* POST action  -> ``<namespace>/<type path>/<action>/action`` (.../jitNetworkAccessPolicies/initiate/action)

The type path is the resource type segments of the id (names dropped), so a list and a GET of one
resource need the same ``read``. Long-running-operation status polls (``locations/*/operations``,
``operationResults``, ``operationStatuses``) need no action. A JIT policy PUT also needs
``Microsoft.Compute/virtualMachines/write`` on every VM it names (:func:`extra_checks`), as Azure does.
Principals without ``actions`` are not checked here (``role: Reader`` is handled by the server).
"""

from __future__ import annotations

import functools
import json
import re

from armsim.arm import ArmError

POLL_TYPES = {"operations", "operationresults", "operationstatuses"}
VERB = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}
# Provider-wide lists whose type Azure registers under locations/ (the same RBAC action applies).
ALIASES = {"microsoft.security/jitnetworkaccesspolicies": "Microsoft.Security/locations/jitNetworkAccessPolicies"}


def action_for(method: str, path: str) -> str | None:
    """The RBAC action of an ARM request, or ``None`` when it needs none (LRO status polls)."""
    method = method.upper()
    segs = [s for s in path.split("?", maxsplit=1)[0].split("/") if s]
    lower = [s.lower() for s in segs]
    if "providers" not in lower:
        # /subscriptions, /subscriptions/{id}, /subscriptions/{id}/resourcegroups[/{rg}]
        rtype = "Microsoft.Resources/subscriptions" + ("/resourceGroups" if len(segs) > 2 else "")
        return rtype + "/" + ("action" if method == "POST" else VERB.get(method, "write"))
    idx = len(lower) - 1 - lower[::-1].index("providers")
    namespace = segs[idx + 1] if idx + 1 < len(segs) else ""
    rest = segs[idx + 2 :]
    types = rest[0::2]
    if any(t.lower() in POLL_TYPES for t in types) and method == "GET":
        return None
    if method == "POST" and len(rest) % 2 == 1 and len(rest) > 1:
        return "/".join([_type(namespace, types[:-1]), types[-1], "action"])
    return _type(namespace, types) + "/" + VERB.get(method, "action")


def _type(namespace: str, types: list[str]) -> str:
    rtype = "/".join([namespace, *types])
    return ALIASES.get(rtype.lower(), rtype)


@functools.lru_cache(maxsize=512)
def _pattern(entry: str) -> re.Pattern:
    return re.compile("^" + ".*".join(re.escape(part) for part in entry.split("*")) + "$", re.IGNORECASE)


def allowed(actions: tuple[str, ...] | list[str], action: str) -> bool:
    """Whether an allow-list entry (``*`` wildcards, case-insensitive) matches ``action``."""
    return any(_pattern(str(entry)).match(action) for entry in actions)


def denied(principal, action: str, scope: str) -> ArmError:
    return ArmError(
        403,
        "AuthorizationFailed",
        f"The client '{principal.client_id}' with object id '{principal.object_id}' does not have authorization to perform action "
        f"'{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
    )


def extra_checks(method: str, path: str, body: bytes) -> list[tuple[str, str]]:
    """(action, scope) pairs a request needs besides its own action: a JIT policy PUT needs
    ``Microsoft.Compute/virtualMachines/write`` on each VM of its body."""
    if method.upper() != "PUT" or not re.search(r"/providers/Microsoft\.Security/locations/[^/]+/jitNetworkAccessPolicies/[^/]+/?$", path, re.I):
        return []
    try:
        data = json.loads(body.decode("utf-8") or "{}")
        vms = (data.get("properties") or {}).get("virtualMachines") or []
        ids = [str(vm["id"]) for vm in vms if isinstance(vm, dict) and vm.get("id")]
    except (ValueError, AttributeError, TypeError):
        return []  # the handler answers the malformed body
    return [("Microsoft.Compute/virtualMachines/write", vm_id) for vm_id in dict.fromkeys(ids)]


def authorize(principal, method: str, path: str, body: bytes = b"") -> None:
    """Raise 403 ``AuthorizationFailed`` unless ``principal.actions`` (when set) allows the request."""
    actions = getattr(principal, "actions", None)
    if actions is None:
        return
    action = action_for(method, path)
    if action is None:
        return
    if not allowed(actions, action):
        raise denied(principal, action, path)
    for extra, scope in extra_checks(method, path, body):
        if not allowed(actions, extra):
            raise denied(principal, extra, scope)
