-- The same reports partitioned by day and by the instance directory of the key (the instance
-- id, or the host name off EC2). The instance is an `injected` projection: every query must
-- name the instances with equality (instance = 'i-...' or instance IN (...)), so this table is
-- for one instance's history, read from its own prefixes only; fleet-wide questions use
-- vpce_probe_reports. Replace BUCKET/PREFIX/ as in create_table.sql.
CREATE EXTERNAL TABLE IF NOT EXISTS vpce_probe_reports_by_instance (
  schema_version string,
  report_id string,
  tool struct<name:string, version:string>,
  started_at string,
  finished_at string,
  duration_ms bigint,
  host struct<hostname:string, os:string, kernel:string>,
  instance_facts struct<region:string, availability_zone:string, instance_id:string, account_id:string, vpc_id:string, subnet_id:string, private_ipv4:string, iam_role:string>,
  region struct<effective:string, effective_source:string, instance:string, sdk:string>,
  targets array<struct<id:string, service:string, name:string, path:struct<kind:string, confidence:string, reachable:boolean>>>,
  findings array<struct<code:string, severity:string, target:string, title:string, remediation:string>>,
  verdict struct<status:string, summary:string, exit_code:int, root_causes:array<struct<code:string, target:string, title:string>>>
)
PARTITIONED BY (day string, instance string)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
-- The report's "instance" object would clash with the partition column: it is read as
-- instance_facts.
WITH SERDEPROPERTIES ('ignore.malformed.json' = 'true', 'mapping.instance_facts' = 'instance')
LOCATION 's3://BUCKET/PREFIX/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.day.type' = 'date',
  'projection.day.format' = 'yyyy/MM/dd',
  'projection.day.range' = '2026/01/01,NOW',
  'projection.day.interval' = '1',
  'projection.day.interval.unit' = 'DAYS',
  'projection.instance.type' = 'injected',
  'storage.location.template' = 's3://BUCKET/PREFIX/${day}/${instance}/'
);
