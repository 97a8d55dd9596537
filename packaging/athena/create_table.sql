-- The reports the agent's S3 sink writes (PREFIX/YYYY/MM/DD/<instance>/<report_id>.json, one
-- JSON document per object, on one line), as an Athena table. Replace BUCKET/PREFIX/ (twice)
-- with the sink's url, and the start of projection.day.range with the first day of reports.
--
-- Partition projection on the day: no crawler, no MSCK REPAIR, and a query that filters on
-- `day` reads only those days' prefixes. Every file under a day's prefix is read, whatever the
-- instance directory; the instance is a column of the report (instance.instance_id, or
-- host.hostname off EC2). vpce_probe_reports_by_instance (create_table_by_instance.sql) adds the
-- instance directory as a partition for one instance's history.
CREATE EXTERNAL TABLE IF NOT EXISTS vpce_probe_reports (
  schema_version string,
  report_id string,
  tool struct<name:string, version:string>,
  started_at string,
  finished_at string,
  duration_ms bigint,
  host struct<hostname:string, os:string, kernel:string>,
  instance struct<region:string, availability_zone:string, instance_id:string, account_id:string, vpc_id:string, subnet_id:string, private_ipv4:string, iam_role:string>,
  region struct<effective:string, effective_source:string, instance:string, sdk:string>,
  targets array<struct<id:string, service:string, name:string, path:struct<kind:string, confidence:string, reachable:boolean>>>,
  findings array<struct<code:string, severity:string, target:string, title:string, remediation:string>>,
  verdict struct<status:string, summary:string, exit_code:int, root_causes:array<struct<code:string, target:string, title:string>>>
)
PARTITIONED BY (day string)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
WITH SERDEPROPERTIES ('ignore.malformed.json' = 'true')
LOCATION 's3://BUCKET/PREFIX/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.day.type' = 'date',
  'projection.day.format' = 'yyyy/MM/dd',
  'projection.day.range' = '2026/01/01,NOW',
  'projection.day.interval' = '1',
  'projection.day.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://BUCKET/PREFIX/${day}/'
);
