"""Secrets never reach any output, whatever they contain and wherever they come from (issue 14,
section 3). Secrets made of every printable character class (``%`` and ``$`` that interpolation
and templating read, quotes, backslashes, Unicode) come from each source the collection reads - a
module option, an environment variable, a credential-file profile, a certificate's key password -
once right and once wrong. Each run is real ansible-playbook at -vvvv with jit_guard enabled and
the SDK's HTTP log on; stdout, stderr, every task result and the HTTP log are searched for the
secret. A right secret must also work: access is opened and closed in armsim."""

import json
import random
import string

import pytest
from harness import run_playbook

SUB = "00000000-0000-0000-0000-000000000001"
TENANT = "00000000-0000-0000-0000-0000000000aa"


def _secrets():
    # Every printable ASCII character appears in one of these, and % $ { } ' " \ in all of them.
    fixed = [
        "p%(user)s%%$HOME${A}{{ x }}`id`'\"\\q-%",
        "!#&*+,-./:;<=>?@[]^_|~ mid space %{}$'\"\\",
        "ünïcødé-密码-🔑-Ω≈ç√%${{'\"\\",
        "A1b2C3d4E5f6G7h8%${}'\"\\",
    ]
    rng = random.Random(14)  # noqa: S311 - deterministic fuzz, not cryptography
    alphabet = string.ascii_letters + string.digits + string.punctuation + " "
    fuzzed = ["%" + "".join(rng.choice(alphabet) for _index in range(28)) + "$" for _secret in range(2)]
    return fixed + fuzzed


SECRETS = _secrets()
CLIENTS = ["00000000-0000-0000-0000-0000000001%02d" % index for index in range(len(SECRETS))]
CERT_CLIENT = "00000000-0000-0000-0000-000000000199"

ARMSIM_SEED = {
    "subscription_id": SUB,
    "tenant_id": TENANT,
    "principals": [
        {"client_id": client, "client_secret": secret, "name": "fuzz-%d" % index} for index, (client, secret) in enumerate(zip(CLIENTS, SECRETS, strict=True))
    ]
    + [{"client_id": CERT_CLIENT, "name": "fuzz-cert", "certificate": "generate"}],
    "resource_groups": [
        {
            "name": "rg-fuzz",
            "network_security_groups": [{"name": "nsg-fuzz", "rules": []}],
            "virtual_networks": [
                {"name": "vnet", "address_space": "10.7.0.0/16", "subnets": [{"name": "default", "prefix": "10.7.0.0/24", "nsg": "nsg-fuzz"}]}
            ],
            "virtual_machines": [{"name": "app-1"}],
        }
    ],
    "jit_policies": [{"name": "default", "resource_group": "rg-fuzz", "virtual_machines": ["app-1"]}],
}
ARMSIM_OPTIONS = {"apply_delay": 0.2}

VM = {"name": "app-1", "resource_group": "rg-fuzz"}
SOURCE = "203.0.113.9"
NO_IDENTITY = {"AZURE_CLIENT_ID": None, "AZURE_SECRET": None, "AZURE_CLIENT_SECRET": None, "AZURE_TENANT": None, "AZURE_PASSWORD": None}


def playbook(secret_option=None, vars_file=None):
    """open, facts, close (the guard closes whatever a failure leaves open); ``secret_option`` is
    given to every task as the ``secret`` option from a vars file (as a vault would hold it), marked
    unsafe so that Ansible does not template it."""
    auth = ""
    if secret_option is not None:
        vars_file.write_text("fuzz_secret: !unsafe %s\n" % json.dumps(secret_option, ensure_ascii=False), encoding="utf-8")
        auth = '      secret: "{{ fuzz_secret }}"\n'
    tasks = [
        ("open", "jitaccess.azure.jit_request", "      virtual_machines: [%s]\n      source_address_prefixes: [%s]\n" % (json.dumps(VM), SOURCE)),
        ("facts", "jitaccess.azure.nsg_jit_facts", "      resource_groups: [rg-fuzz]\n"),
        ("close", "jitaccess.azure.jit_request", "      virtual_machines: [%s]\n      state: absent\n" % json.dumps(VM)),
    ]
    text = "- hosts: localhost\n  gather_facts: false\n"
    if vars_file is not None and secret_option is not None:
        text += "  vars_files: [%s]\n" % vars_file
    text += "  tasks:\n"
    for name, module, args in tasks:
        text += "  - name: %s\n    ignore_errors: true\n    %s:\n%s%s" % (name, module, args, auth)
    return text


def run(armsim, tmp_path, env, secret_option=None):
    log = tmp_path / "sdk-http.log"
    env = dict(env, ANSIBLE_CALLBACKS_ENABLED="record_results,jitaccess.azure.jit_guard", AZURE_LOG_PATH=None)
    text = playbook(secret_option, tmp_path / "secret-vars.yml").replace(
        "      virtual_machines: [", "      log_mode: file\n      log_path: %s\n      virtual_machines: [" % log
    )
    result = run_playbook(armsim, text, env=env, args=("-vvvv",))
    outputs = {"stdout": result.stdout, "stderr": result.stderr, "results": json.dumps(result.results, ensure_ascii=False)}
    outputs["results (ASCII-escaped)"] = json.dumps(result.results)
    if log.exists():
        outputs["HTTP log"] = log.read_text(encoding="utf-8", errors="replace")
    return result, outputs


def assert_nowhere(secret, outputs):
    for where, text in outputs.items():
        for form in (secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]):
            assert form not in text, "the secret appears in %s" % where


def assert_opened_and_closed(result, armsim):
    assert not result.result("open").get("failed"), result.result("open").get("msg")
    assert result.result("open")["changed"] and result.result("close")["changed"]
    rules = [rule["name"] for nsg in armsim.state()["network_security_groups"] for rule in nsg["properties"]["securityRules"]]
    assert not [name for name in rules if name.startswith("MicrosoftDefenderForCloud-JITRule-")]  # allow rules gone


def identity(index):
    return {"AZURE_CLIENT_ID": CLIENTS[index], "AZURE_TENANT": TENANT}


@pytest.mark.parametrize("index", range(len(SECRETS)))
def test_secret_from_the_environment(armsim, tmp_path, index):
    secret = SECRETS[index]
    env = dict(NO_IDENTITY, ANSIBLE_AZURE_AUTH_SOURCE="env", AZURE_SECRET=secret, **identity(index))
    result, outputs = run(armsim, tmp_path, env)
    assert result.rc == 0, result.stdout[-3000:]
    assert_opened_and_closed(result, armsim)
    assert_nowhere(secret, outputs)
    wrong, outputs = run(armsim, tmp_path, dict(env, AZURE_SECRET=secret + "x%"))
    assert wrong.result("open")["failed"] and "AADSTS7000215" in wrong.result("open")["msg"]
    assert_nowhere(secret + "x%", outputs)


@pytest.mark.parametrize("index", [0, 2, 4])
def test_secret_as_a_module_option(armsim, tmp_path, index):
    secret = SECRETS[index]
    env = dict(NO_IDENTITY, ANSIBLE_AZURE_AUTH_SOURCE="env", AZURE_SECRET=secret, **identity(index))  # the guard's own
    result, outputs = run(armsim, tmp_path, env, secret_option=secret)
    assert result.rc == 0, result.stdout[-3000:]
    assert_opened_and_closed(result, armsim)
    assert_nowhere(secret, outputs)
    wrong, outputs = run(armsim, tmp_path, env, secret_option=secret + "y%")
    assert wrong.result("open")["failed"] and "AADSTS7000215" in wrong.result("open")["msg"]
    assert_nowhere(secret + "y%", outputs)


@pytest.mark.parametrize("index", range(len(SECRETS)))
def test_secret_from_a_credential_file_profile(armsim, tmp_path, index):
    secret = SECRETS[index]
    home = tmp_path / "home"
    (home / ".azure").mkdir(parents=True)
    (home / ".azure" / "credentials").write_text(
        "[fuzz]\nsubscription_id=%s\nclient_id=%s\ntenant=%s\nsecret=%s\n" % (SUB, CLIENTS[index], TENANT, secret), encoding="utf-8"
    )
    env = dict(NO_IDENTITY, HOME=str(home), ANSIBLE_AZURE_AUTH_SOURCE="credential_file", AZURE_PROFILE="fuzz")
    result, outputs = run(armsim, tmp_path, env)
    assert result.rc == 0, result.stdout[-3000:]
    assert_opened_and_closed(result, armsim)
    assert_nowhere(secret, outputs)
    # A profile that is wrong and a credential file that is broken around the secret.
    (home / ".azure" / "credentials").write_text(
        "[fuzz]\nclient_id=%s\ntenant=%s\nsecret=%sz\n  continued %s\n[fuzz\n" % (CLIENTS[index], TENANT, secret, secret), encoding="utf-8"
    )
    broken, outputs = run(armsim, tmp_path, env)
    assert broken.result("open")["failed"] and "is not a valid credential file" in broken.result("open")["msg"]
    assert_nowhere(secret, outputs)


def test_certificate_key_password(armsim, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509 import load_pem_x509_certificate

    password = SECRETS[0] + SECRETS[2]
    with open(armsim.info["certificates"][CERT_CLIENT], "rb") as stream:
        pem = stream.read()
    key = serialization.load_pem_private_key(pem, password=None)
    certificate = load_pem_x509_certificate(pem[pem.index(b"-----BEGIN CERTIFICATE-----") :])
    encrypted = tmp_path / "client.pem"
    encrypted.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(password.encode("utf-8")))
        + certificate.public_bytes(serialization.Encoding.PEM)
    )
    env = dict(
        NO_IDENTITY,
        ANSIBLE_AZURE_AUTH_SOURCE="env",
        AZURE_CLIENT_ID=CERT_CLIENT,
        AZURE_TENANT=TENANT,
        AZURE_X509_CERTIFICATE_PATH=str(encrypted),
        AZURE_CLIENT_CERTIFICATE_PASSWORD=password,
    )
    result, outputs = run(armsim, tmp_path, env)
    assert result.rc == 0, result.stdout[-3000:]
    assert_opened_and_closed(result, armsim)
    assert_nowhere(password, outputs)
    wrong, outputs = run(armsim, tmp_path, dict(env, AZURE_CLIENT_CERTIFICATE_PASSWORD=password + "w%"))
    assert wrong.result("open")["failed"]
    assert_nowhere(password + "w%", outputs)
