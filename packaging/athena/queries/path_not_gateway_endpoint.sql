-- Instances whose traffic does not go through the gateway endpoint now: in the latest report of
-- each instance (of today and yesterday), the targets whose path is another kind (proxy,
-- internet, interface-endpoint, unknown).
WITH latest AS (
  SELECT r.*,
         coalesce(r.instance.instance_id, 'host:' || r.host.hostname) AS instance_key,
         row_number() OVER (
           PARTITION BY coalesce(r.instance.instance_id, 'host:' || r.host.hostname)
           ORDER BY r.started_at DESC) AS newest_first
  FROM vpce_probe_reports r
  WHERE r.day >= date_format(current_timestamp - interval '1' day, '%Y/%m/%d')
)
SELECT instance_key,
       instance.subnet_id AS subnet,
       array_join(transform(filter(targets, t -> t.path.kind <> 'gateway-endpoint'),
                            t -> t.id || '=' || t.path.kind), ',') AS paths,
       started_at
FROM latest
WHERE newest_first = 1
  AND cardinality(filter(targets, t -> t.path.kind <> 'gateway-endpoint')) > 0
ORDER BY subnet, instance_key
