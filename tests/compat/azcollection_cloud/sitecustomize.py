"""Test-only stand-in for the ``get_cloud_from_metadata_endpoint`` that azure.azcollection 3.12.0 calls.

azure.azcollection 3.12.0 resolves a ``cloud_environment`` that is a URL with
``azure_cloud.get_cloud_from_metadata_endpoint(url)`` (azure_rm_common.AzureRMAuth), where
``azure_cloud`` is ``azure.cli.core.cloud``. That function only ever existed in msrestazure's
``azure_cloud``; azure-cli-core (2.75.0, its pin) has none, so every metadata URL fails before any
request, as "'AttributeError' object has no attribute 'message'" (the error handler reads
``e.message``). Upstream: ansible-collections/azure issue #2157 (reported against 3.13.0), fixed by
pull request #2158. ``test_azcollection_side_by_side.py::test_unpatched_azcollection_cannot_resolve_a_metadata_url``
keeps proving the bug, so this file goes when the bundled release fixes it.

Put on ``PYTHONPATH`` for one ansible-playbook run, this module (imported by ``site`` at start-up in
every Python process of the run, the modules included) adds the missing function to
``azure.cli.core.cloud`` when that module is imported, and changes nothing else. The function does
what azure-cli-core itself does with ``ARM_CLOUD_METADATA_URL``: it GETs the metadata document
(``/metadata/endpoints?api-version=2019-05-01``: one cloud object, or a list of them) with requests,
TLS verified (``REQUESTS_CA_BUNDLE``), and maps it to a ``Cloud`` with azure-cli-core's own
``_arm_to_cli_mapper``. Everything after that - credential, authority, ARM base URL, SDK clients -
is azure.azcollection's unmodified code.
"""

import importlib.abc
import importlib.machinery
import sys

TARGET = "azure.cli.core.cloud"


class MetadataEndpointError(Exception):
    """Carries ``message``, which azure.azcollection's error handler reads."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


def get_cloud_from_metadata_endpoint(url, name=None, session=None):
    from urllib.parse import urlparse

    import requests
    from azure.cli.core import cloud

    try:
        response = (session or requests).get(url, timeout=30)
        response.raise_for_status()
        document = response.json()
    except (requests.exceptions.RequestException, ValueError) as exc:
        raise MetadataEndpointError("could not read cloud metadata from %s: %s" % (url, exc)) from exc
    if isinstance(document, list):  # the public cloud's document lists every cloud
        host = urlparse(url).hostname
        matches = [doc for doc in document if urlparse(doc.get("resourceManager", "")).hostname == host]
        if not matches:
            raise MetadataEndpointError("metadata at %s lists no cloud whose resourceManager is %s" % (url, host))
        document = matches[0]
    result = cloud._arm_to_cli_mapper(document)
    if name:
        result.name = name
    return result


class _AddMetadataFunction(importlib.abc.MetaPathFinder):
    """Finds ``azure.cli.core.cloud`` as usual and adds the function after it has executed."""

    def find_spec(self, fullname, path, target=None):
        if fullname != TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            if not hasattr(module, "get_cloud_from_metadata_endpoint"):
                module.get_cloud_from_metadata_endpoint = get_cloud_from_metadata_endpoint

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _AddMetadataFunction())
