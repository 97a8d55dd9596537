#!/usr/bin/env python3
"""Large vpce-probe reports for the collector's benchmarks: the shapes of the collector's
healthy fixture (crates/collector/tests/fixtures/healthy.json), grown to what an instance that
checks many buckets and tables sends: 12 targets (8 buckets, 4 tables), three service
addresses per name with a TCP check each, and findings with the catalogue's wording lengths.
About 25-30 KB of JSON (2-3 KB gzip'd on the wire: reports repeat themselves). The collector's tests validate the output
against schema/report.schema.json (crates/collector/tests/ingest.rs), so the benchmark cannot
drift from real reports.

    python3 scripts/collector_reports.py [--problems]   # prints one report
"""
import copy
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "crates/collector/tests/fixtures/healthy.json"

BUCKETS = 8
TABLES = 4
ADDRESSES_PER_NAME = 3


def _tcp_check(name, service, address, port_n, status="ok"):
    connected = status == "ok"
    return {
        "id": f"tcp/{name}/{address}",
        "check": "tcp",
        "subject": name,
        "status": status,
        "summary": (f"{name} {address}:443 connected in 2 ms" if connected
                    else f"{name} {address}:443 timed out after 3000 ms"),
        "duration_ms": 2 if connected else 3000,
        "evidence": {
            "type": "tcp",
            "name": name,
            "service": service,
            "address": address,
            "port": 443,
            "address_class": "service-region",
            "origin": "application",
            "local_address": f"10.0.1.10:{40000 + port_n}",
            "outcome": "connected" if connected else "timeout",
            "error": None,
            "connect_ms": 2 if connected else 3000,
        },
    }


def _target(service, name, endpoint, addresses, reachable):
    kind = "gateway-endpoint" if reachable else "unknown"
    label = "S3" if service == "s3" else "DynamoDB"
    return {
        "id": f"{service}:{name}",
        "service": service,
        "name": name,
        "endpoint_names": [endpoint],
        "endpoint_override": None,
        "names": [],
        "path": {
            "kind": kind,
            "confidence": "inferred" if reachable else "unknown",
            "reachable": reachable,
            "evidence": [f"{a} is in the {label} ranges of eu-west-1 and "
                         + ("connected with no internet path" if reachable else "timed out")
                         for a in addresses[:3]],
            "to_confirm": "allow ec2:DescribeRouteTables to see the route to the prefix list",
        },
    }


def large_report(problems=False):
    """One large report. With `problems`, the last three buckets time out behind a network
    ACL: a finding per bucket and per address class, and a problems verdict."""
    r = json.loads(FIXTURE.read_text())
    targets, checks, findings = [], [], []
    port_n = 0
    broken = set(range(BUCKETS - 3, BUCKETS)) if problems else set()
    for b in range(BUCKETS):
        name = f"app-data-{b:02d}-eu-west-1-111122223333"
        endpoint = f"{name}.s3.eu-west-1.amazonaws.com"
        addresses = [f"52.218.{b}.{10 + a}" for a in range(ADDRESSES_PER_NAME)]
        ok = b not in broken
        targets.append(_target("s3", name, endpoint, addresses, ok))
        for a in addresses:
            port_n += 1
            checks.append(_tcp_check(endpoint, "s3", a, port_n, "ok" if ok else "fail"))
        if not ok:
            ids = [f"tcp/{endpoint}/{a}" for a in addresses]
            findings.append({
                "code": "NACL_OUTBOUND_BLOCKS", "severity": "error", "target": f"s3:{name}",
                "title": f"TCP to every S3 address of {endpoint} times out",
                "detail": ("Connections from 10.0.1.10 to " + ", ".join(addresses)
                           + " on port 443 time out while the addresses are inside the S3 ranges "
                           "of eu-west-1: something between the instance and the gateway "
                           "endpoint drops the packets (network ACL outbound rules, a security "
                           "group without an egress rule for the prefix list, or a route table "
                           "without the endpoint's route)."),
                "remediation": ("Allow outbound TCP 443 to the S3 prefix list (pl-6da54004) in "
                                "the subnet's network ACL, and inbound TCP 1024-65535 from it; "
                                "check the security group's egress rules and the subnet's route "
                                "table for the vpce- route."),
                "checklist_item": "network-acl", "check_ids": ids,
            })
            findings.append({
                "code": "PATH_NOT_GATEWAY_ENDPOINT", "severity": "warning",
                "target": f"s3:{name}",
                "title": f"The path to {endpoint} could not be shown to be the gateway endpoint",
                "detail": "No address answered, so neither the hop count nor the signed call "
                          "could tell which path the traffic takes.",
                "remediation": "Fix the connection failure above, then run the probe again.",
                "checklist_item": "traffic-flow", "check_ids": ids[:2],
            })
    for t in range(TABLES):
        name = f"orders-{t:02d}"
        endpoint = "dynamodb.eu-west-1.amazonaws.com"
        addresses = [f"52.94.{24 + t}.{10 + a}" for a in range(ADDRESSES_PER_NAME)]
        targets.append(_target("dynamodb", name, endpoint, addresses, True))
        for a in addresses:
            port_n += 1
            check = _tcp_check(endpoint, "dynamodb", a, port_n)
            check["id"] = f"tcp/{endpoint}/{a}/{name}"
            checks.append(check)
    r["targets"] = targets
    r["checks"] = checks
    r["findings"] = findings
    r["config"]["buckets"] = [t["name"] for t in targets if t["service"] == "s3"]
    r["config"]["tables"] = [t["name"] for t in targets if t["service"] == "dynamodb"]
    if findings:
        causes = [{"code": f["code"], "target": f["target"], "title": f["title"]}
                  for f in findings if f["severity"] == "error"]
        r["verdict"] = {"status": "problems",
                        "summary": f"{len(causes)} of {len(targets)} targets are not reached "
                                   "through the gateway endpoint",
                        "root_causes": causes, "exit_code": 1}
    return r


def stamped(base, report_id, instance, started_at):
    """A copy of `base` as instance `instance` sent it at `started_at` (RFC 3339)."""
    r = copy.deepcopy(base)
    r["report_id"] = report_id
    r["started_at"] = started_at
    r["instance"]["instance_id"] = instance
    r["host"]["hostname"] = f"ip-10-0-{hash(instance) % 250}-{len(instance)}"
    return r


if __name__ == "__main__":
    json.dump(large_report("--problems" in sys.argv[1:]), sys.stdout)
