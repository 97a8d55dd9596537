#!/usr/bin/env python3
"""Runs the saved Athena queries of packaging/athena/queries/ with DuckDB on reports written in
the S3 sink's layout, and checks their answers.

The reports are real: testdata/ holds the reports of four lab scenarios (healthy, a security
group that drops S3 and DynamoDB, a proxy in the path, the internet path instead of the endpoint),
saved with `python3 lab/run_scenarios.py --only NAME --save-reports packaging/athena/testdata`.
Each is given another instance, subnet, report id and start time, checked against
schema/report.schema.json, and written as the agent's S3 sink writes it:
PREFIX/YYYY/MM/DD/<instance>/<report_id>.json, one JSON document on one line.

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
TESTDATA = ATHENA / "testdata"
SCHEMA = REPO / "schema" / "report.schema.json"
PREFIX = "vpce-probe/"

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def stamp(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def report(n, scenario, instance, subnet, ago, hostname=None):
    """The lab scenario's report, of `instance` (None: off EC2), started `ago` before now."""
    r = json.loads((TESTDATA / f"{scenario}.json").read_text())
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
    jsonschema.validate(r, json.loads(SCHEMA.read_text()))
    return r


def sink_key(r):
    """ReportMeta::s3_key of src/agent/sinks.rs."""
    origin = (r.get("instance") or {}).get("instance_id") or r["host"]["hostname"]
    return f"{PREFIX}{r['started_at'][:10].replace('-', '/')}/{origin}/{r['report_id']}.json"


M = dt.timedelta(minutes=1)
H = dt.timedelta(hours=1)
D = dt.timedelta(days=1)
FLEET = [
    # subnet-a: both instances time out now (their security group drops S3 and DynamoDB).
    report(1, "healthy", "i-a1", "subnet-a", 10 * D),
    report(2, "sg-egress-drop", "i-a1", "subnet-a", 3 * D),
    report(3, "sg-egress-drop", "i-a1", "subnet-a", 2 * H),
    report(4, "sg-egress-drop", "i-a1", "subnet-a", 1 * M),
    report(5, "healthy", "i-a2", "subnet-a", 30 * M),
    report(6, "sg-egress-drop", "i-a2", "subnet-a", 2 * M),
    # subnet-b: i-b1 timed out an hour ago and is healthy again; i-d1 went silent.
    report(7, "sg-egress-drop", "i-b1", "subnet-b", 1 * H),
    report(8, "healthy", "i-b1", "subnet-b", 1 * M),
    report(9, "healthy", "i-d1", "subnet-b", 2 * H),
    # subnet-c: a proxy in the path (problems); the internet path (healthy, but not the endpoint).
    report(10, "proxy-in-path", "i-c1", "subnet-c", 3 * M),
    report(11, "internet-instead-of-endpoint", "i-f1", "subnet-c", 4 * M),
    # An instance last heard of 9 days ago: older than the silent query's window.
    report(12, "healthy", "i-e1", "subnet-e", 9 * D),
    # Off EC2: keyed by host name.
    report(13, "healthy", None, None, 5 * M, hostname="build-box"),
]


ACCOUNT, VPC = "123456789012", "vpc-0a0a0a0a0a0a0a0a0"
UNKNOWN = "s3:lab-bucket=unknown,dynamodb:lab-table=unknown"
EXPECTED = {
    "problems_by_subnet": [
        (ACCOUNT, VPC, "subnet-a", 2, "i-a1,i-a2", "TCP_TIMEOUT"),
        (ACCOUNT, VPC, "subnet-c", 1, "i-c1", "PROXY_IN_PATH"),
    ],
    "finding_first_last": [
        ("i-a1", "subnet-a", stamp(NOW - 3 * D), stamp(NOW - 1 * M), 3),
        ("i-b1", "subnet-b", stamp(NOW - 1 * H), stamp(NOW - 1 * H), 1),
        ("i-a2", "subnet-a", stamp(NOW - 2 * M), stamp(NOW - 2 * M), 1),
    ],
    "path_not_gateway_endpoint": [
        ("i-a1", "subnet-a", UNKNOWN, stamp(NOW - 1 * M)),
        ("i-a2", "subnet-a", UNKNOWN, stamp(NOW - 2 * M)),
        ("i-c1", "subnet-c", "s3:lab-bucket=proxy,dynamodb:lab-table=proxy", stamp(NOW - 3 * M)),
        ("i-f1", "subnet-c", UNKNOWN, stamp(NOW - 4 * M)),
    ],
    "silent_instances": [
        ("i-d1", "subnet-b", stamp(NOW - 2 * H)),
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
