-- First and last occurrence of a finding code (here TCP_TIMEOUT: change it) per instance over
-- the last 30 days, with the number of reports that had it.
SELECT coalesce(instance.instance_id, 'host:' || host.hostname) AS instance_key,
       instance.subnet_id AS subnet,
       min(started_at) AS first_seen,
       max(started_at) AS last_seen,
       count(*) AS reports
FROM vpce_probe_reports
WHERE day >= date_format(current_timestamp - interval '30' day, '%Y/%m/%d')
  AND contains(transform(findings, f -> f.code), 'TCP_TIMEOUT')
GROUP BY coalesce(instance.instance_id, 'host:' || host.hostname), instance.subnet_id
ORDER BY first_seen, instance_key
