"""Bad input: every bad row is rejected with its line number and reason, the rest imported.

The rejects file holds one JSON line per refused record, ``{"line", "reason",
"record"}``; these tests check it lists exactly the bad lines, in order, and
that every good row reached the database.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core import clock
from core.db import Store
from core.errors import CadenceError
from core.ingest import Kind, import_file
from core.models import Customer, Event
from core.settings import Settings
from tests.helpers import customers, rejects_of, seed_customers, write, write_bytes

BIG = 70 * 1024
"""Bigger than the 64 KiB field limit."""


def jsonl_line(record: Any) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode() + b"\n"


def assert_rejects(path: Path, expected: list[tuple[int, str]]) -> list[dict[str, Any]]:
    """The rejects file lists exactly ``expected`` (line, reason fragment).

    Rows refused while writing (an unknown customer) are listed after the batch's
    unreadable rows, so the comparison is by line number.
    """
    found = sorted(rejects_of(path), key=lambda reject: int(reject["line"]))
    assert [r["line"] for r in found] == [line for line, _ in expected], found
    for reject, (line, fragment) in zip(found, expected, strict=True):
        assert fragment in reject["reason"], f"line {line}: {reject['reason']!r}"
        assert set(reject) == {"line", "reason", "record"}
        assert isinstance(reject["record"], str)
    return found


async def events(store: Store) -> list[tuple[str, str]]:
    async with store.reading() as session:
        rows = (
            await session.execute(
                select(Customer.external_id, Event.type)
                .join(Customer, Customer.id == Event.customer_id)
                .order_by(Event.occurred_at, Event.type)
            )
        ).all()
    return [(external_id, kind) for external_id, kind in rows]


async def test_a_customers_csv_with_every_kind_of_bad_row(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    lines = [
        b"customer_id,email,name,phone,time_zone,registered_at,note",  # 1
        b"g1,g1@example.com,Good One,+351912345678,Europe/Lisbon,2026-01-01,",  # 2
        b"b1,not-an-email,Bad Email,,,,",  # 3
        b'b2,b2@example.com,"Bad "quote"x,,,,',  # 4: stray quote
        b"g2,g2@example.com,Good Two,,,,",  # 5
        b"b3,b3@example.com,Too,Many,Columns,,,,",  # 6
        b",b4@example.com,No Id,,,,",  # 7
        b"b5,b5@example.com,Bad Zone,,Mars/Olympus,,",  # 8
        b"b6,b6@example.com,Bad Date,,,2026-02-30,",  # 9
        b'b7,"b7@example.com\nx",Break In Email,,,,',  # 10-11: LF inside a quoted e-mail
        b'b8,b8@example.com,"Name\nBreak",,,,',  # 12-13: LF inside a quoted name
        b'b9,b9@example.com,Phone Break,"+351\n912345678",,,',  # 14-15: LF inside a phone
        b"g3,g3@example.com,Good Three,,,,",  # 16
        b"b10,b10@example.com,Jos\xe9 Latin-1,,,,",  # 17: not UTF-8
        b"b11,b11@example.com,Oversize,,,," + b"x" * BIG,  # 18: field over 64 KiB
        b"b12,b12@example.com,Bad Phone,12ab,,,",  # 19
        b"",  # 20: a blank line is no record
        b"g4,G4@EXAMPLE.com,Good Four,,,,",  # 21
        b'b13,"b13@example.com\r",CR In Email,,,,',  # 22: CR inside a quoted e-mail
        b'b14,b14@example.com,"CR\rName",,,,',  # 23: CR inside a quoted name
        b"b15,b15@example.com,Bad Birthday,,,31/12/2025,",  # 24
        b"g5,g5@example.com,Good Five,,Asia/Tokyo,2026-01-01T09:00:00+09:00,vip",  # 25, no LF
    ]
    path = write_bytes(tmp_path / "customers.csv", b"\n".join(lines))
    rejects = tmp_path / "customers.rejects.jsonl"

    report = await import_file(store, settings, "customers", path, rejects_path=rejects)

    found = assert_rejects(
        rejects,
        [
            (3, "`email` 'not-an-email' is not a valid e-mail address"),
            (4, "malformed CSV"),
            (6, "expected 7 columns, found 9"),
            (7, "missing required field `customer_id`"),
            (8, "`time_zone` 'Mars/Olympus' is not an IANA time zone"),
            (9, "`registered_at` '2026-02-30' is not a date or time"),
            (10, "`email` contains a line break"),
            (12, "`name` contains a line break"),
            (14, "`phone` contains a line break"),
            (17, "not valid UTF-8"),
            (18, "larger than 64 KiB"),
            (19, "`phone` '12ab' is not a phone number"),
            (22, "`email` contains a line break"),
            (23, "`name` contains a line break"),
            (24, "`registered_at` '31/12/2025' is not a date or time"),
        ],
    )
    assert (report.read, report.inserted, report.rejected) == (20, 5, 15)
    assert "not-an-email" in found[0]["record"]
    assert "Jos" in found[9]["record"] and "Latin-1" in found[9]["record"]
    assert len(found[10]["record"]) < 1024, "an oversize record is cut short in the rejects file"

    stored = await customers(store)
    assert sorted(stored) == ["g1", "g2", "g3", "g4", "g5"]
    assert stored["g4"].email == "G4@example.com"
    assert stored["g5"].attributes == {"note": "vip"}
    assert stored["g5"].time_zone == "Asia/Tokyo"


async def test_a_customers_jsonl_with_every_kind_of_bad_row(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    data = b"".join(
        [
            jsonl_line({"customer_id": "g1", "email": "g1@example.com"}),  # 1
            b'{"customer_id": "b1", "email": "b1@example.com"\n',  # 2: malformed JSON
            jsonl_line(["b2", "b2@example.com"]),  # 3: not an object
            b'{"customer_id": "b3", "name": "Jos\xe9"}\n',  # 4: not UTF-8
            jsonl_line({"customer_id": "b4", "email": "b4@example.com\r"}),  # 5
            jsonl_line({"customer_id": "b5", "name": "Two\nLines"}),  # 6
            jsonl_line({"customer_id": "b6", "phone": "+351 912\r\n345 678"}),  # 7
            jsonl_line({"customer_id": "b7", "time_zone": "Nowhere/Town"}),  # 8
            jsonl_line({"customer_id": "b8", "email": "b8@localhost"}),  # 9
            jsonl_line({"customer_id": "b9", "birthday": "1990-02-30"}),  # 10
            jsonl_line({"customer_id": "", "email": "b10@example.com"}),  # 11
            jsonl_line({"email": "b11@example.com"}),  # 12
            jsonl_line({"customer_id": "b12", "notes": "x" * BIG}),  # 13
            jsonl_line({"customer_id": "b13", "attributes": "gold"}),  # 14
            jsonl_line({"customer_id": {"id": 1}}),  # 15
            jsonl_line({"customer_id": "b15", "consent_sms": "maybe"}),  # 16
            jsonl_line(42),  # 17
            b"   \n",  # 18: blank
            jsonl_line({"customer_id": "b16", "time_zone": "../../etc/passwd"}),  # 19
            jsonl_line({"customer_id": "b17", "locale": "not a locale"}),  # 20
            jsonl_line({"customer_id": "g2", "name": "Zoë", "attributes": {"big": "y" * 1000}}),
            b'{"customer_id": "g3", "email": "G3@Example.ORG"}',  # 22, no LF
        ]
    )
    path = write_bytes(tmp_path / "customers.jsonl", data)
    rejects = tmp_path / "rejects.jsonl"

    report = await import_file(store, settings, "customers", path, rejects_path=rejects)

    found = assert_rejects(
        rejects,
        [
            (2, "malformed JSON"),
            (3, "one JSON object"),
            (4, "not valid UTF-8"),
            (5, "`email` contains a line break"),
            (6, "`name` contains a line break"),
            (7, "`phone` contains a line break"),
            (8, "`time_zone` 'Nowhere/Town' is not an IANA time zone"),
            (9, "`email` 'b8@localhost' is not a valid e-mail address"),
            (10, "`birthday` '1990-02-30' is not a date"),
            (11, "missing required field `customer_id`"),
            (12, "missing required field `customer_id`"),
            (13, "larger than 64 KiB"),
            (14, "`attributes` must be a JSON object"),
            (15, "`customer_id` must be text"),
            (16, "`consent_sms` 'maybe'"),
            (17, "one JSON object"),
            (19, "`time_zone` '../../etc/passwd' is not an IANA time zone"),
            (20, "`locale` 'not a locale'"),
        ],
    )
    assert (report.read, report.inserted, report.rejected) == (21, 3, 18)
    assert found[0]["record"] == '{"customer_id": "b1", "email": "b1@example.com"'
    assert json.loads(found[3]["record"]) == {"customer_id": "b4", "email": "b4@example.com\r"}
    stored = await customers(store)
    assert sorted(stored) == ["g1", "g2", "g3"]
    assert stored["g2"].name == "Zoë"
    assert stored["g3"].email == "G3@example.org"


async def test_an_events_jsonl_with_every_kind_of_bad_row(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    await seed_customers(store, settings, tmp_path, "c1")
    when = "2026-11-01T10:00:00Z"
    many = {f"k{n:04d}": "v" * 100 for n in range(700)}  # each small, together > 64 KiB
    data = b"".join(
        [
            jsonl_line({"customer_id": "c1", "type": "login", "occurred_at": when}),  # 1
            b'{"customer_id": "c1", "type": "login",\n',  # 2
            jsonl_line(["c1", "login", when]),  # 3
            b'{"customer_id": "c1", "type": "page_view", "occurred_at": "'
            + when.encode()
            + b'", "title": "\xff\xfe"}\n',  # 4
            jsonl_line({"customer_id": "c1", "type": "login", "occurred_at": "yesterday"}),  # 5
            jsonl_line(
                {"customer_id": "c1", "type": "purchase", "occurred_at": when, "value": "abc"}
            ),  # 6
            jsonl_line({"customer_id": "ghost", "type": "login", "occurred_at": when}),  # 7
            jsonl_line(
                {"customer_id": "c1", "type": "page_view", "occurred_at": when, "url": "x" * BIG}
            ),  # 8
            jsonl_line({"type": "login", "occurred_at": when}),  # 9
            b"\n",  # 10
            jsonl_line(
                {"customer_id": "c1", "type": "purchase", "occurred_at": when, "value": 9.5}
            ),  # 11
            b"null\n",  # 12
            jsonl_line({"customer_id": "c1", "type": "Bad Type!", "occurred_at": when}),  # 13
            jsonl_line({"customer_id": "c1\r", "type": "login", "occurred_at": when}),  # 14
            jsonl_line({"customer_id": "c1", "type": "login", "occurred_at": ""}),  # 15
            jsonl_line(
                {"customer_id": "c1", "type": "login", "occurred_at": when, "properties": [1]}
            ),  # 16
            jsonl_line(
                {"customer_id": "c1", "type": "view", "occurred_at": when, "properties": many}
            ),  # 17
            jsonl_line({"customer_id": "c1", "type": "login", "occurred_at": "2026-13-01"}),  # 18
            jsonl_line(
                {"customer_id": "c1", "type": "purchase", "occurred_at": when, "value": 1e300}
            ),  # 19
            b'{"customer_id": "c1", "type": "message_opened", "occurred_at": "'
            + when.encode()
            + b'"}',  # 20, no LF
        ]
    )
    path = write_bytes(tmp_path / "events.jsonl", data)
    rejects = tmp_path / "rejects.jsonl"

    report = await import_file(store, settings, "events", path, rejects_path=rejects)

    assert_rejects(
        rejects,
        [
            (2, "malformed JSON"),
            (3, "one JSON object"),
            (4, "not valid UTF-8"),
            (5, "`occurred_at` 'yesterday' is not a date or time"),
            (6, "`value` 'abc' is not a number"),
            (7, "unknown customer `ghost`"),
            (8, "larger than 64 KiB"),
            (9, "missing required field `customer_id`"),
            (12, "one JSON object"),
            (13, "`type` 'bad type!'"),
            (14, "`customer_id` contains a line break"),
            (15, "missing required field `occurred_at`"),
            (16, "`properties` must be a JSON object"),
            (17, "`properties` are larger than 64 KiB"),
            (18, "`occurred_at` '2026-13-01' is not a date or time"),
            (19, "`value`"),
        ],
    )
    assert (report.read, report.inserted, report.rejected) == (19, 3, 16)
    assert await events(store) == [
        ("c1", "login"),
        ("c1", "message_opened"),
        ("c1", "purchase"),
    ]


async def test_an_events_csv_with_bad_rows(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    await seed_customers(store, settings, tmp_path, "c1", "c2")
    lines = [
        b"customer_id,type,occurred_at,value,source,page",  # 1
        b"c1,login,2026-11-01T10:00:00Z,,,/a",  # 2
        b"c1,login,,,,/b",  # 3: empty required value
        b"c1,,2026-11-01T10:00:00Z,,,/c",  # 4
        b"c1,login,2026-11-01T25:00:00Z,,,/d",  # 5
        b"c1,purchase,2026-11-01T10:00:00Z,12\xa0,,/e",  # 6: not UTF-8
        b'c1,login,2026-11-01T11:00:00Z,,"web\nfeed",/f',  # 7-8: LF in a one-line field
        b'c1,login,2026-11-01T12:00:00Z,,,"/g"h',  # 9: stray quote
        b"c2,purchase,2026-11-01T10:00:00Z,NaN,,/h",  # 10
        b"c2,purchase,2026-11-01T10:00:00Z,1,2,3,4",  # 11
        b"c2,page_view,2026-11-02T10:00:00Z,,," + b"p" * BIG,  # 12
        b"nobody,login,2026-11-01T10:00:00Z,,,",  # 13
        b"c2,purchase,2026-11-03T10:00:00Z,30,,/i",  # 14
    ]
    path = write_bytes(tmp_path / "events.csv", b"\r\n".join(lines) + b"\r\n")
    rejects = tmp_path / "rejects.jsonl"

    report = await import_file(store, settings, "events", path, rejects_path=rejects)

    assert_rejects(
        rejects,
        [
            (3, "missing required field `occurred_at`"),
            (4, "missing required field `type`"),
            (5, "`occurred_at` '2026-11-01T25:00:00Z' is not a date or time"),
            (6, "not valid UTF-8"),
            (7, "`source` contains a line break"),
            (9, "malformed CSV"),
            (10, "`value` 'NaN' is out of range"),
            (11, "expected 6 columns, found 7"),
            (12, "larger than 64 KiB"),
            (13, "unknown customer `nobody`"),
        ],
    )
    assert (report.read, report.inserted, report.rejected) == (12, 2, 10)
    assert await events(store) == [("c1", "login"), ("c2", "purchase")]


async def test_a_latin1_file_rejects_the_lines_that_are_not_utf8(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    text = "customer_id,name\nc1,Ana\nc2,José\nc3,Zoë\nc4,Bob\n"
    path = write_bytes(tmp_path / "latin1.csv", text.encode("latin-1"))
    rejects = tmp_path / "rejects.jsonl"

    report = await import_file(store, settings, "customers", path, rejects_path=rejects)

    assert_rejects(rejects, [(3, "not valid UTF-8"), (4, "not valid UTF-8")])
    assert (report.inserted, report.rejected) == (2, 2)
    assert sorted(await customers(store)) == ["c1", "c4"]


async def test_an_unclosed_quote_on_the_last_line_rejects_only_that_line(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    path = write(tmp_path / "c.csv", 'customer_id,name\nc1,Ana\nc2,"Unclosed\n')
    rejects = tmp_path / "rejects.jsonl"

    report = await import_file(store, settings, "customers", path, rejects_path=rejects)

    assert_rejects(rejects, [(3, "malformed CSV")])
    assert (report.inserted, report.rejected) == (1, 1)
    assert sorted(await customers(store)) == ["c1"]


async def test_a_rejected_csv_record_is_written_exactly_as_it_stood(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    bad_email = 'c1,"Doe, John",not-an-email'
    two_lines = 'c2,"Line\nBreak",x@example.com'
    path = write(tmp_path / "c.csv", f"customer_id,name,email\n{bad_email}\n{two_lines}\nc3,Ok,\n")
    rejects = tmp_path / "rejects.jsonl"

    await import_file(store, settings, "customers", path, rejects_path=rejects)

    found = assert_rejects(rejects, [(2, "not a valid e-mail"), (3, "line break")])
    assert [reject["record"] for reject in found] == [bad_email, two_lines]
    assert sorted(await customers(store)) == ["c3"]


async def test_an_unclosed_quote_mid_file_keeps_every_swallowed_row_in_the_rejects_file(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    path = write(tmp_path / "c.csv", 'customer_id,name\nc1,Ana\nc2,"Open\nc3,Rui\nc4,Eva\n')
    rejects = tmp_path / "rejects.jsonl"

    report = await import_file(store, settings, "customers", path, rejects_path=rejects)

    (reject,) = assert_rejects(rejects, [(3, "malformed CSV (lines 3-5)")])
    assert reject["record"] == 'c2,"Open\nc3,Rui\nc4,Eva'
    assert (report.inserted, report.rejected) == (1, 1)


@pytest.mark.parametrize(
    ("kind", "header", "column"),
    [
        ("customers", "id,email", "customer_id"),
        ("events", "customer_id,type,when", "occurred_at"),
        ("events", "customer_id,occurred_at", "type"),
        ("transactions", "customer_id,date,quantity,total", "amount"),
    ],
)
async def test_a_missing_required_column_is_a_clear_error_naming_it(
    store: Store,
    settings: Settings,
    tmp_path: Path,
    frozen_clock: clock.FixedClock,
    kind: Kind,
    header: str,
    column: str,
) -> None:
    width = header.count(",") + 1
    path = write(tmp_path / "input.csv", f"{header}\n" + ",".join(["x"] * width) + "\n")
    rejects = tmp_path / "rejects.jsonl"

    with pytest.raises(CadenceError) as caught:
        await import_file(store, settings, kind, path, rejects_path=rejects)

    message = str(caught.value)
    assert path in message
    assert f"missing required column '{column}'" in message
    assert f"--map {column}=" in message
    assert await customers(store) == {}
    assert rejects_of(rejects) == []


async def test_a_mapping_supplies_the_missing_column(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    await seed_customers(store, settings, tmp_path, "c1")
    path = write(tmp_path / "e.csv", "customer_id,type,when\nc1,login,2026-11-01T10:00:00Z\n")
    report = await import_file(store, settings, "events", path, mapping={"occurred_at": "when"})
    assert (report.inserted, report.rejected) == (1, 0)
    assert await events(store) == [("c1", "login")]


async def test_a_header_naming_a_column_twice_is_a_clear_error(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    path = write(tmp_path / "c.csv", "customer_id,email,email\nc1,a@example.com,b@example.com\n")
    with pytest.raises(CadenceError, match="'email' appears twice"):
        await import_file(store, settings, "customers", path)
    assert await customers(store) == {}


async def test_a_header_that_is_not_utf8_is_a_clear_error(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    path = write_bytes(tmp_path / "c.csv", b"customer_id,n\xe9me\nc1,Ana\n")
    with pytest.raises(CadenceError, match="header line is not UTF-8"):
        await import_file(store, settings, "customers", path)
    assert await customers(store) == {}


async def test_a_missing_file_and_an_unknown_extension_are_clear_errors(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    with pytest.raises(CadenceError, match="cannot open"):
        await import_file(store, settings, "customers", str(tmp_path / "absent.csv"))
    odd = write(tmp_path / "customers.xlsx", "customer_id\nc1\n")
    with pytest.raises(CadenceError, match="--format"):
        await import_file(store, settings, "customers", odd)
    report = await import_file(store, settings, "customers", odd, fmt="csv")
    assert report.inserted == 1


async def test_an_empty_file_or_a_header_alone_imports_nothing(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    for name, text in (("empty.csv", ""), ("header.csv", "customer_id,email\n"), ("e.jsonl", "")):
        report = await import_file(store, settings, "customers", write(tmp_path / name, text))
        assert (report.read, report.inserted, report.rejected) == (0, 0, 0)
    assert await customers(store) == {}


async def test_a_utf8_byte_order_mark_is_not_part_of_the_first_column(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    path = write_bytes(tmp_path / "bom.csv", "\ufeffcustomer_id,name\nc1,Zoë\n".encode())
    report = await import_file(store, settings, "customers", path)
    assert (report.inserted, report.rejected) == (1, 0)
    assert (await customers(store))["c1"].name == "Zoë"


async def test_bad_rows_are_reported_the_same_when_a_worker_process_parses(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    # Large files are parsed in a separate process; make this small one take that path.
    parallel = settings.model_copy(
        update={"imports": settings.imports.model_copy(update={"parallel_parse_min_bytes": 0})}
    )
    await seed_customers(store, settings, tmp_path, "c1")
    path = write_bytes(
        tmp_path / "events.csv",
        b"customer_id,type,occurred_at,value\n"
        b"c1,login,2026-11-01T10:00:00Z,\n"
        b"c1,login,not-a-date,\n"
        b"c1,purchase,2026-11-01T11:00:00Z,\xff\n"
        b'c1,login,2026-11-01T11:00:00Z,"1\n2"\n'
        b"ghost,login,2026-11-01T10:00:00Z,\n"
        b"c1,purchase,2026-11-01T12:00:00Z,8\n",
    )
    rejects = tmp_path / "rejects.jsonl"

    report = await import_file(store, parallel, "events", path, rejects_path=rejects)

    assert_rejects(
        rejects,
        [
            (3, "`occurred_at` 'not-a-date'"),
            (4, "not valid UTF-8"),
            (5, "`value`"),
            (7, "unknown customer `ghost`"),
        ],
    )
    assert (report.read, report.inserted, report.rejected) == (6, 2, 4)
    assert await events(store) == [("c1", "login"), ("c1", "purchase")]


async def test_a_nul_character_is_rejected_and_the_rest_imported(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    # PostgreSQL can store NUL neither in text nor in jsonb: such a row reaching the
    # database would fail its whole batch, so it is refused like any other bad row.
    csv_path = write(tmp_path / "c.csv", "customer_id,name,note\nn1,A\x00B,\nn2,Ok,\nn3,,x\x00y\n")
    csv_rejects = tmp_path / "csv.rejects.jsonl"
    report = await import_file(store, settings, "customers", csv_path, rejects_path=csv_rejects)
    assert_rejects(
        csv_rejects,
        [(2, "`name` contains a NUL character"), (4, "`attributes` contains a NUL character")],
    )
    assert (report.inserted, report.rejected) == (1, 2)

    jsonl_path = write_bytes(
        tmp_path / "c.jsonl",
        jsonl_line({"customer_id": "j1", "attributes": {"deep": ["a\u0000"]}})
        + jsonl_line({"customer_id": "j2", "email": "j2\u0000@example.com"})
        + jsonl_line({"customer_id": "j3", "key\u0000": 1})
        + jsonl_line({"customer_id": "j4", "attributes": {"fine": "yes"}}),
    )
    jsonl_rejects = tmp_path / "jsonl.rejects.jsonl"
    report = await import_file(store, settings, "customers", jsonl_path, rejects_path=jsonl_rejects)
    assert_rejects(
        jsonl_rejects,
        [
            (1, "`attributes` contains a NUL character"),
            (2, "`email` contains a NUL character"),
            (3, "`attributes` contains a NUL character"),
        ],
    )
    assert (report.inserted, report.rejected) == (1, 3)

    tx_path = write(
        tmp_path / "tx.csv",
        "customer_id,date,quantity,amount\nt\x001,19970101,1,5\nt2,19970101,1,5\n",
    )
    tx_rejects = tmp_path / "tx.rejects.jsonl"
    report = await import_file(store, settings, "transactions", tx_path, rejects_path=tx_rejects)
    assert_rejects(tx_rejects, [(2, "`customer_id` contains a NUL character")])
    assert sorted(await customers(store)) == ["j4", "n2", "t2"]


async def test_a_jsonl_field_over_64_kib_in_multibyte_characters_is_rejected(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    # 30,000 characters, 90,000 bytes in UTF-8: over the limit, as it is in a CSV file.
    wide = "€" * 30_000
    path = write_bytes(
        tmp_path / "c.jsonl",
        jsonl_line({"customer_id": "w1", "notes": wide}) + jsonl_line({"customer_id": "w2"}),
    )
    csv_path = write(tmp_path / "c.csv", f"customer_id,notes\nw3,{wide}\nw4,\n")
    rejects = tmp_path / "rejects.jsonl"
    csv_rejects = tmp_path / "csv.rejects.jsonl"

    await import_file(store, settings, "customers", path, rejects_path=rejects)
    await import_file(store, settings, "customers", csv_path, rejects_path=csv_rejects)

    assert_rejects(rejects, [(1, "larger than 64 KiB")])
    assert_rejects(csv_rejects, [(2, "larger than 64 KiB")])
    assert sorted(await customers(store)) == ["w2", "w4"]
