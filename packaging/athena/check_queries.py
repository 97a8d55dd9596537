#!/usr/bin/env python3
"""Runs the saved Athena queries of packaging/athena/queries/ with DuckDB on reports written in
the S3 sink's layout, and checks their answers.

The reports are built from the collector's fixture (a real report, checked against
schema/report.schema.json), varied per instance, and written as the agent's S3 sink writes
them: PREFIX/YYYY/MM/DD/<instance>/<report_id>.json, one compact JSON document per object.

The translation from Athena to DuckDB is mechanical (docs/collector.md, "Beyond one machine"):
- the table is a DuckDB view of the same name over read_json of the layout's glob, with the
  column types of create_table.sql translated type by type, newline-delimited records (as
  Athena's JSON SerDe reads them: a pretty-printed object would not load), malformed objects
  ignored ('ignore.malformed.json'), and `day` parsed from each file's path (the layout is not
  key=value, so it is a regexp, not DuckDB's hive_partitioning);
- lambdas `x -> e` become `lambda x: e`; transform and filter become list_transform and
  list_filter (text substitutions);
- array_join, date_format and from_iso8601_timestamp become DuckDB macros.

Usage: python check_queries.py (with duckdb and jsonschema importable; the test venv has both).
Exit 0 when every query answers as expected.
"""

import datetime as dt
import json
import pathlib
import re
import sys
import tempfile

import duckdb
import jsonschema

REPO = pathlib.Path(__file__).resolve().parents[2]
ATHENA = REPO / "packaging" / "athena"
FIXTURE = REPO / "crates" / "collector" / "tests" / "fixtures" / "healthy.json"
SCHEMA = REPO / "schema" / "report.schema.json"
PREFIX = "vpce-probe/"

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def stamp(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def report(n, instance, subnet, ago, problems=(), paths=None, hostname=None):
    """A report of `instance` (None: off EC2) started `ago` before now."""
    r = json.loads(FIXTURE.read_text())
    started = NOW - ago
    r["report_id"] = f"00000000-0000-4000-8000-{n:012d}"
    r["started_at"] = stamp(started)
    r["finished_at"] = stamp(started + dt.timedelta(milliseconds=57))
    r["host"]["clock_utc"] = stamp(started)
    r["host"]["hostname"] = hostname or f"host-{instance}"
    if instance is None:
        r["instance"] = None
    else:
        r["instance"]["instance_id"] = instance
        r["instance"]["subnet_id"] = subnet
    for target, kind in (paths or {}).items():
        t = next(t for t in r["targets"] if t["id"] == target)
        t["path"]["kind"] = kind
        t["path"]["reachable"] = kind != "unknown"
    if problems:
        r["findings"] = [
            {"code": code, "severity": "error", "target": target,
             "title": f"{code} on {target}", "detail": "detail", "remediation": "fix it",
             "checklist_item": "network-acl", "check_ids": []}
            for code, target in problems
        ]
        r["verdict"] = {
            "status": "problems", "summary": "S3 is not reached through the gateway endpoint",
            "root_causes": [{"code": c, "target": t, "title": f"{c} on {t}"} for c, t in problems],
            "exit_code": 1,
        }
    jsonschema.validate(r, json.loads(SCHEMA.read_text()))
    return r


def sink_key(r):
    """ReportMeta::s3_key of src/agent/sinks.rs."""
    origin = (r.get("instance") or {}).get("instance_id") or r["host"]["hostname"]
    return f"{PREFIX}{r['started_at'][:10].replace('-', '/')}/{origin}/{r['report_id']}.json"


TIMEOUT = [("TCP_TIMEOUT", "s3:app-data")]
PROXY = [("PROXY_IN_PATH", "s3:app-data")]
M = dt.timedelta(minutes=1)
H = dt.timedelta(hours=1)
D = dt.timedelta(days=1)
FLEET = [
    # subnet-a: both instances time out now.
    report(1, "i-a1", "subnet-a", 10 * D),
    report(2, "i-a1", "subnet-a", 3 * D, TIMEOUT, {"s3:app-data": "unknown"}),
    report(3, "i-a1", "subnet-a", 2 * H, TIMEOUT, {"s3:app-data": "unknown"}),
    report(4, "i-a1", "subnet-a", 1 * M, TIMEOUT, {"s3:app-data": "unknown"}),
    report(5, "i-a2", "subnet-a", 30 * M),
    report(6, "i-a2", "subnet-a", 2 * M, TIMEOUT, {"s3:app-data": "unknown"}),
    # subnet-b: i-b1 timed out an hour ago and is healthy again; i-d1 went silent.
    report(7, "i-b1", "subnet-b", 1 * H, TIMEOUT, {"s3:app-data": "unknown"}),
    report(8, "i-b1", "subnet-b", 1 * M),
    report(9, "i-d1", "subnet-b", 2 * H),
    # subnet-c: S3 through a proxy.
    report(10, "i-c1", "subnet-c", 3 * M, PROXY, {"s3:app-data": "proxy"}),
    # An instance last heard of 9 days ago: older than the silent query's window.
    report(11, "i-e1", "subnet-e", 9 * D),
    # Off EC2: keyed by host name.
    report(12, None, None, 5 * M, hostname="build-box"),
]


def ts(t):
    return stamp(t)


EXPECTED = {
    "problems_by_subnet": [
        ("111122223333", "vpc-0a1b2c3d", "subnet-a", 2, "i-a1,i-a2", "TCP_TIMEOUT"),
        ("111122223333", "vpc-0a1b2c3d", "subnet-c", 1, "i-c1", "PROXY_IN_PATH"),
    ],
    "finding_first_last": [
        ("i-a1", "subnet-a", ts(NOW - 3 * D), ts(NOW - 1 * M), 3),
        ("i-b1", "subnet-b", ts(NOW - 1 * H), ts(NOW - 1 * H), 1),
        ("i-a2", "subnet-a", ts(NOW - 2 * M), ts(NOW - 2 * M), 1),
    ],
    "path_not_gateway_endpoint": [
        ("i-a1", "subnet-a", "s3:app-data=unknown", ts(NOW - 1 * M)),
        ("i-a2", "subnet-a", "s3:app-data=unknown", ts(NOW - 2 * M)),
        ("i-c1", "subnet-c", "s3:app-data=proxy", ts(NOW - 3 * M)),
    ],
    "silent_instances": [
        ("i-d1", "subnet-b", ts(NOW - 2 * H)),
    ],
}


def split_top(s):
    """Splits on the commas that are not inside <...>."""
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts]


SCALARS = {"string": "VARCHAR", "bigint": "BIGINT", "int": "INTEGER", "boolean": "BOOLEAN",
           "double": "DOUBLE"}


def duck_type(hive):
    """A Hive column type of the DDL as a DuckDB type."""
    hive = hive.strip()
    if hive in SCALARS:
        return SCALARS[hive]
    if hive.startswith("array<") and hive.endswith(">"):
        return duck_type(hive[6:-1]) + "[]"
    if hive.startswith("struct<") and hive.endswith(">"):
        fields = []
        for f in split_top(hive[7:-1]):
            name, typ = f.split(":", 1)
            fields.append(f'"{name.strip()}" {duck_type(typ)}')
        return "STRUCT(" + ", ".join(fields) + ")"
    raise ValueError(f"no DuckDB type for {hive}")


def ddl_columns(ddl):
    """The column list of CREATE EXTERNAL TABLE, partition columns excluded."""
    create = ddl[ddl.index("CREATE EXTERNAL TABLE"):]
    body = create.split("(", 1)[1].split("\n)\nPARTITIONED BY", 1)[0]
    cols = {}
    for line in split_top(body.replace("\n", " ")):
        name, typ = line.split(None, 1)
        cols[name] = duck_type(typ)
    return cols


def translate(athena_sql):
    """The mechanical Athena -> DuckDB translation of a saved query."""
    sql = re.sub(r"\b(\w+) -> ", r"lambda \1: ", athena_sql)
    sql = re.sub(r"\btransform\(", "list_transform(", sql)
    sql = re.sub(r"\bfilter\(", "list_filter(", sql)
    return sql


MACROS = [
    "CREATE MACRO array_join(a, sep) AS array_to_string(a, sep)",
    "CREATE MACRO date_format(d, f) AS strftime(d, f)",
    "CREATE MACRO from_iso8601_timestamp(s) AS CAST(s AS TIMESTAMPTZ)",
]


def main():
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        for r in FLEET:
            path = root / sink_key(r)
            path.parent.mkdir(parents=True, exist_ok=True)
            # As the S3 sink writes it: one compact document on one line.
            path.write_text(json.dumps(r, separators=(",", ":")) + "\n")
        # An object that is not a report: 'ignore.malformed.json' skips it, so does DuckDB.
        bad = root / PREFIX / NOW.strftime("%Y/%m/%d") / "i-zz" / "broken.json"
        bad.parent.mkdir(parents=True, exist_ok=True)
        bad.write_text('{"report_id": "half a report\n')

        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        for m in MACROS:
            con.execute(m)
        columns = ddl_columns((ATHENA / "create_table.sql").read_text())
        glob = f"{root}/{PREFIX}*/*/*/*/*.json"
        col_sql = "{" + ", ".join(f"'{k}': '{v}'" for k, v in columns.items()) + "}"
        con.execute(f"""
            CREATE VIEW vpce_probe_reports AS
            SELECT * EXCLUDE (filename),
                   regexp_extract(filename, '(\\d{{4}}/\\d{{2}}/\\d{{2}})/[^/]+/[^/]+$', 1) AS day,
                   filename AS "$path"
            FROM read_json('{glob}', format = 'newline_delimited', columns = {col_sql},
                           filename = true, ignore_errors = true)""")
        # The malformed object is a row of NULLs, in DuckDB as in Athena's SerDe with
        # 'ignore.malformed.json': the queries must (and do) leave it out.
        rows, reports = con.execute(
            "SELECT count(*), count(report_id) FROM vpce_probe_reports").fetchone()
        if (rows, reports) != (len(FLEET) + 1, len(FLEET)):
            print(f"FAIL: {rows} rows and {reports} reports loaded, {len(FLEET)} reports written")
            failures += 1
        for name, want in EXPECTED.items():
            athena_sql = (ATHENA / "queries" / f"{name}.sql").read_text()
            try:
                got = con.execute(translate(athena_sql)).fetchall()
            except duckdb.Error as e:
                print(f"FAIL {name}: {e}")
                failures += 1
                continue
            if got != want:
                print(f"FAIL {name}:\n  got  {got}\n  want {want}")
                failures += 1
            else:
                print(f"ok   {name}: {len(got)} rows")
        # The pretty-printed JSON other outputs use would not load in Athena's SerDe: one
        # report spread over lines is no report at all for a line-oriented reader.
        pretty = root / "pretty" / "r.json"
        pretty.parent.mkdir(parents=True)
        pretty.write_text(json.dumps(FLEET[0], indent=2) + "\n")
        n = con.execute(f"""SELECT count(*) FROM read_json('{pretty}', format = 'newline_delimited',
                            columns = {col_sql}, ignore_errors = true)
                            WHERE report_id IS NOT NULL""").fetchone()[0]
        if n != 0:
            print("FAIL: a pretty-printed report was read line by line; the check proves nothing")
            failures += 1
    if failures:
        print(f"{failures} failure(s)")
        return 1
    print(f"all {len(EXPECTED)} saved queries answer as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
