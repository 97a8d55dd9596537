-- Instances with problems now: the latest report of each instance (of today and yesterday) whose
-- verdict is "problems", grouped by account, VPC and subnet, with the root-cause codes. "Every
-- instance of subnet X fails the same way" is one row.
WITH latest AS (
  SELECT r.*,
         coalesce(r.instance.instance_id, 'host:' || r.host.hostname) AS instance_key,
         row_number() OVER (
           PARTITION BY coalesce(r.instance.instance_id, 'host:' || r.host.hostname)
           ORDER BY r.started_at DESC) AS newest_first
  FROM vpce_probe_reports r
  WHERE r.day >= date_format(current_timestamp - interval '1' day, '%Y/%m/%d')
)
SELECT instance.account_id AS account,
       instance.vpc_id AS vpc,
       instance.subnet_id AS subnet,
       count(*) AS instances,
       array_join(array_sort(array_agg(instance_key)), ',') AS instance_keys,
       array_join(array_sort(array_distinct(flatten(array_agg(
         transform(verdict.root_causes, c -> c.code))))), ',') AS root_cause_codes
FROM latest
WHERE newest_first = 1 AND verdict.status = 'problems'
GROUP BY instance.account_id, instance.vpc_id, instance.subnet_id
ORDER BY instances DESC, subnet
