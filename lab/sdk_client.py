"""The instance's own SDK client, as an application would run it: boto3 (botocore) with
whatever environment and shared config the scenario sets (FIPS, dual-stack, profiles,
endpoint URLs, proxies), credentials and nothing else from IMDS. HeadBucket and
DescribeTable against the lab's bucket (or VPL_SDK_BUCKET) and table; exit 0 when both work, 1 otherwise, with
the client's error on stderr. Run inside the instance namespace (lab.sh exec)."""

import os
import sys

import boto3
from botocore.config import Config

REGION = "eu-west-1"


def main() -> int:
    # Short timeouts and one attempt: the scenario wants the client's verdict, not retries.
    cfg = Config(connect_timeout=3, read_timeout=3, retries={"max_attempts": 1, "mode": "standard"})
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    session = boto3.Session()
    region = region or session.region_name or REGION
    failures = []
    try:
        # VPL_SDK_BUCKET: a scenario that probes another bucket name (an access point alias).
        bucket = os.environ.get("VPL_SDK_BUCKET", "lab-bucket")
        session.client("s3", region_name=region, config=cfg).head_bucket(Bucket=bucket)
    except Exception as e:  # noqa: BLE001 - any failure is the client's verdict
        failures.append(f"s3 HeadBucket: {type(e).__name__}: {e}")
    try:
        session.client("dynamodb", region_name=region, config=cfg).describe_table(TableName="lab-table")
    except Exception as e:  # noqa: BLE001
        failures.append(f"dynamodb DescribeTable: {type(e).__name__}: {e}")
    for f in failures:
        print(f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
