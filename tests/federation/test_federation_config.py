"""The federation options of `generate-config` and `homeserver.yaml`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from homeserver import config
from homeserver.__main__ import main
from homeserver.key_rotation import rotate_signing_key
from homeserver.tls import generate_self_signed, server_tls_options
from tests.federation.certs import TestCA


def test_defaults_generate_a_certificate_and_verify_peers(tmp_path: Path) -> None:
    path = config.generate(server_name="127.0.0.2:8448", data_dir=tmp_path,
                           federation_listen="127.0.0.2:8448")
    loaded = config.load(path)
    assert loaded.tls_certificate_path == tmp_path.resolve() / "federation.crt"
    assert loaded.tls_private_key_path == tmp_path.resolve() / "federation.key"
    assert loaded.tls_private_key_path.stat().st_mode & 0o077 == 0
    assert loaded.federation_verify_certificates is True
    assert loaded.federation_ca_path is None
    assert (loaded.old_signing_keys, loaded.trusted_key_servers) == ({}, [])
    assert loaded.key_valid_for_s == 86400
    assert (loaded.federation_retry_min_s, loaded.federation_retry_max_s) == (2.0, 600.0)
    server_tls_options(loaded.tls_certificate_path, loaded.tls_private_key_path).getContext()


def test_given_certificate_ca_and_insecure_are_written_and_read(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    leaf = ca.issue(ips=["127.0.0.3"])
    data = tmp_path / "data"
    assert main(["generate-config", "--server-name", "127.0.0.3:8448", "--data-dir", str(data),
                 "--tls-cert", str(leaf.cert_path), "--tls-key", str(leaf.key_path),
                 "--federation-ca", str(ca.cert_path), "--federation-insecure"]) == 0
    loaded = config.load(data / "homeserver.yaml")
    assert loaded.tls_certificate_path == leaf.cert_path.resolve()
    assert loaded.tls_private_key_path == leaf.key_path.resolve()
    assert loaded.federation_ca_path == ca.cert_path
    assert loaded.federation_verify_certificates is False
    assert not (data / "federation.crt").exists()
    text = (data / "homeserver.yaml").read_text()
    assert "# Whether to verify other servers' TLS certificates" in text


@pytest.mark.parametrize("args", [
    ["--tls-cert", "{cert}"],  # no key
    ["--tls-cert", "{cert}", "--tls-key", "{missing}"],
    ["--federation-ca", "{missing}"],
])
def test_bad_tls_options_are_refused(tmp_path: Path, args: list[str],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    cert = tmp_path / "c.pem"
    generate_self_signed("a.test", cert, tmp_path / "k.pem")
    filled = [a.format(cert=cert, missing=tmp_path / "nope.pem") for a in args]
    assert main(["generate-config", "--server-name", "a.test", "--data-dir",
                 str(tmp_path / "d"), *filled]) == 2
    assert "error:" in capsys.readouterr().err


def test_configs_written_before_federation_options_still_load(tmp_path: Path) -> None:
    path = config.generate(server_name="old.test", data_dir=tmp_path)
    raw = yaml.safe_load(path.read_text())
    for option in ("tls_certificate_path", "tls_private_key_path", "federation_ca",
                   "federation_verify_certificates", "key_valid_for_s", "old_signing_keys",
                   "trusted_key_servers", "federation_retry"):
        del raw[option]
    path.write_text(yaml.safe_dump(raw))
    loaded = config.load(path)
    assert loaded.tls_certificate_path is None and loaded.federation_verify_certificates


def test_old_keys_and_notaries_are_parsed_and_checked(tmp_path: Path) -> None:
    path = config.generate(server_name="a.test", data_dir=tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["old_signing_keys"] = {"ed25519:old": {"key": "abc", "expired_ts": 5}}
    raw["trusted_key_servers"] = [{"server_name": "notary.test",
                                   "verify_keys": {"ed25519:n": "xyz"}}]
    path.write_text(yaml.safe_dump(raw))
    loaded = config.load(path)
    assert loaded.old_signing_keys == {"ed25519:old": config.OldSigningKey("abc", 5)}
    assert loaded.trusted_key_servers == [config.TrustedKeyServer("notary.test",
                                                                  {"ed25519:n": "xyz"})]
    for bad in ({"old_signing_keys": {"rsa:x": {"key": "a", "expired_ts": 1}}},
                {"old_signing_keys": {"ed25519:x": {"key": "a"}}},
                {"trusted_key_servers": [{"server_name": "not a name"}]},
                {"trusted_key_servers": {"server_name": "a.test"}}):
        path.write_text(yaml.safe_dump({**raw, **bad}))
        with pytest.raises(config.ConfigError):
            config.load(path)


def test_rotation_keeps_the_old_key_and_the_comments(tmp_path: Path) -> None:
    path = config.generate(server_name="a.test", data_dir=tmp_path)
    before = config.load(path)
    new_id = rotate_signing_key(path, now_ms=1234)
    rotate_signing_key(path, now_ms=5678)
    after = config.load(path)
    assert after.signing_key.key_id not in (before.signing_key.key_id, new_id)
    assert after.old_signing_keys[before.signing_key.key_id] == config.OldSigningKey(
        before.signing_key.verify_key_base64, 1234)
    assert after.old_signing_keys[new_id].expired_ts == 5678
    assert "# Former signing keys" in path.read_text()


def test_the_listener_serves_the_chain_after_the_leaf(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    leaf = ca.issue(dns_names=["chain.test"])
    chained = tmp_path / "chain.pem"
    chained.write_bytes(leaf.cert_path.read_bytes() + ca.cert_path.read_bytes())
    options = server_tls_options(chained, leaf.key_path)
    assert len(options.extraCertChain) == 1
    with pytest.raises(ValueError):
        server_tls_options(leaf.key_path, leaf.key_path)
