"""SPEC §3.1: the key format, its checksum, and that only the SHA-256 is ever stored."""

from __future__ import annotations

import hashlib
import logging
import re
import string
import zlib
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from tests.api_keys import (
    KEYS_URL,
    ME_URL,
    bearer,
    create_via_api,
    dump_database,
    key_row,
    log_in_as,
)
from tests.helpers import create_account, create_key
from wacrm.api_keys.secret import generate_secret, is_well_formed
from wacrm.models import ApiKey, Role

# An oracle written from the SPEC, independent of the implementation's helpers.
ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
FORMAT = re.compile(r"wacrm_live_(?P<random>[0-9A-Za-z]{32})(?P<check>[0-9A-Za-z]{6})")


def expected_checksum(random_part: str) -> str:
    number, digits = zlib.crc32(random_part.encode()), ""
    for _ in range(6):
        number, digit = divmod(number, 62)
        digits = ALPHABET[digit] + digits
    assert number == 0  # CRC32 always fits in six base62 digits
    return digits


def with_char(key: str, index: int, char: str) -> str:
    return key[:index] + char + key[index + 1 :]


def test_generated_keys_have_the_documented_format_and_checksum():
    for _ in range(300):
        secret = generate_secret()
        match = FORMAT.fullmatch(secret.plaintext)
        assert match, secret.prefix
        assert match["check"] == expected_checksum(match["random"])
        assert secret.prefix == "wacrm_live_" + match["random"][:8]
        assert secret.key_hash == hashlib.sha256(secret.plaintext.encode()).hexdigest()
        assert is_well_formed(secret.plaintext)


def test_randomness_uses_the_whole_base62_alphabet_and_never_repeats():
    secrets = [generate_secret().plaintext for _ in range(500)]
    assert len(set(secrets)) == len(secrets)
    used = set("".join(s[len("wacrm_live_") : len("wacrm_live_") + 32] for s in secrets))
    assert used == set(ALPHABET)  # 62 symbols x 32 = ~190 bits, not hex or a subset


def test_the_secret_never_shows_in_a_repr():
    secret = generate_secret()
    assert secret.plaintext not in repr(secret)
    assert secret.plaintext[len("wacrm_live_") :] not in str(secret)


def test_any_single_character_change_fails_the_checksum():
    key = generate_secret().plaintext
    for index in range(len("wacrm_live_"), len(key)):
        for char in ("0", "a", "Z"):
            if key[index] != char:
                assert not is_well_formed(with_char(key, index, char)), (index, char)


def test_a_case_flipped_letter_fails_the_checksum():
    key = generate_secret().plaintext
    letters = [i for i in range(len("wacrm_live_"), len(key)) if key[i].isalpha()]
    for index in letters:
        assert not is_well_formed(with_char(key, index, key[index].swapcase()))


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda k: k[:-6] + expected_checksum(k[11:43][::-1]), id="wrong-checksum"),
        pytest.param(lambda k: k[:-6] + "000000", id="zero-checksum"),
        pytest.param(lambda k: k[:-1], id="one-short"),
        pytest.param(lambda k: k + "0", id="one-long"),
        pytest.param(lambda k: k.replace("wacrm_live_", "wacrm_test_"), id="other-marker"),
        pytest.param(lambda k: k.replace("wacrm_live_", "WACRM_LIVE_"), id="marker-case"),
        pytest.param(lambda k: with_char(k, 20, "-"), id="dash"),
        pytest.param(lambda k: with_char(k, 20, "_"), id="underscore"),
        pytest.param(lambda k: with_char(k, 20, "\u00e9"), id="non-ascii"),
        pytest.param(lambda k: with_char(k, 20, "\uff21"), id="fullwidth-A"),
        pytest.param(lambda k: " " + k, id="leading-space"),
        pytest.param(lambda k: k + "\n", id="trailing-newline"),
        pytest.param(lambda k: "", id="empty"),
        pytest.param(lambda k: "wacrm_live_", id="marker-only"),
    ],
)
def test_malformed_candidates_are_not_well_formed(mangle):
    key = generate_secret().plaintext
    assert not is_well_formed(mangle(key))


def test_a_correct_checksum_over_any_random_part_is_well_formed():
    # The checksum proves the shape only; the database decides whether the key exists.
    random_part = "A" * 32
    assert is_well_formed("wacrm_live_" + random_part + expected_checksum(random_part))


async def test_only_the_sha256_and_the_prefix_are_stored(client, db):
    owner = await log_in_as(client, db, Role.OWNER)
    created = await create_via_api(client, owner, name="stored", scopes=["contacts:read"])
    plaintext = created["plaintext"]
    assert FORMAT.fullmatch(plaintext)

    row = await key_row(db, created["key"]["id"])
    assert row.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert row.prefix == plaintext[:19] == created["key"]["prefix"]
    # No column of any table holds the secret, or even its non-display part.
    everything = await dump_database(db)
    assert plaintext not in everything
    assert plaintext[19:] not in everything
    assert plaintext[11:43] not in everything


async def test_the_secret_is_not_in_the_sqlite_file(client, db, settings):
    if not settings.is_sqlite:
        pytest.skip("the file check is for the embedded SQLite database")
    owner = await log_in_as(client, db, Role.OWNER)
    created = await create_via_api(client, owner)
    assert (await client.get(ME_URL, headers=bearer(created["plaintext"]))).status_code == 200
    path = Path(settings.database_url.split("///", 1)[1])
    for file in (path, path.with_name(path.name + "-wal")):
        if file.exists():
            content = file.read_bytes()
            assert created["plaintext"][11:].encode() not in content
            assert created["plaintext"][11:].encode("utf-16-le") not in content


async def test_the_hash_column_is_unique_in_the_database(db):
    account = await create_account(db)
    key = await create_key(db, account.id)
    original = await key_row(db, key.id)
    db.add(
        ApiKey(
            account_id=account.id, name="dup", prefix=original.prefix, key_hash=original.key_hash
        )
    )
    with pytest.raises(IntegrityError):
        await db.flush()
    await db.rollback()


async def test_the_secret_never_reaches_the_logs(client, db, caplog):
    caplog.set_level(logging.DEBUG)
    owner = await log_in_as(client, db, Role.OWNER)
    created = await create_via_api(client, owner)
    plaintext = created["plaintext"]
    await client.get(ME_URL, headers=bearer(plaintext))
    await client.delete(f"{KEYS_URL}/{created['key']['id']}", headers=owner.csrf)
    await client.get(ME_URL, headers=bearer(plaintext))
    rendered = "\n".join(
        f"{record.getMessage()} {record.args!r} {record.exc_text or ''}"
        for record in caplog.records
    )
    assert plaintext[11:] not in rendered
