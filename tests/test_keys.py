import hashlib
import os
import stat

import pytest

from ledger.errors import Refused
from ledger.keys import KeyPair, verify_signature


def test_key_id_is_sha256_of_public_key():
    k = KeyPair.generate()
    assert k.key_id == hashlib.sha256(k.public_key).hexdigest()


def test_key_file_is_private_and_round_trips(tmp_path):
    k = KeyPair.generate("acme")
    path = tmp_path / "acme.key"
    k.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert (tmp_path / "acme.key.pub").exists()
    assert "seed" not in (tmp_path / "acme.key.pub").read_text()
    loaded = KeyPair.load(path)
    assert loaded.key_id == k.key_id and loaded.actor == "acme"
    with pytest.raises(FileExistsError):
        k.save(path)


def test_bad_key_files_are_refused(tmp_path):
    with pytest.raises(Refused):
        KeyPair.load(tmp_path / "missing.key")
    (tmp_path / "junk.key").write_text("{not json")
    with pytest.raises(Refused):
        KeyPair.load(tmp_path / "junk.key")


def test_signatures_verify_only_for_the_signed_bytes_and_key():
    k, other = KeyPair.generate(), KeyPair.generate()
    sig = k.sign(b"hello")
    assert verify_signature(k.public_key, b"hello", sig)
    assert not verify_signature(k.public_key, b"hellO", sig)
    assert not verify_signature(other.public_key, b"hello", sig)
    assert not verify_signature(k.public_key, b"hello", sig[:-1])
