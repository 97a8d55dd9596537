-- Silent instances: they reported in the last 8 days (the agent's spool keeps 7), but not in
-- the last 15 minutes (15 intervals of the agent's default 60 s: adjust to your interval).
SELECT coalesce(instance.instance_id, 'host:' || host.hostname) AS instance_key,
       max_by(instance.subnet_id, started_at) AS subnet,
       max(started_at) AS last_report
FROM vpce_probe_reports
WHERE day >= date_format(current_timestamp - interval '8' day, '%Y/%m/%d')
GROUP BY coalesce(instance.instance_id, 'host:' || host.hostname)
HAVING max(from_iso8601_timestamp(started_at)) < current_timestamp - interval '15' minute
ORDER BY last_report, instance_key
