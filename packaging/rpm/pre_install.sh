# vpce-probe %pre: create the service's system user (the same as systemd/vpce-probe.sysusers,
# which rpm 4.16 on Amazon Linux 2023 does not apply by itself) before %post creates
# /var/lib/vpce-probe for it.
getent group vpce-probe >/dev/null || groupadd -r vpce-probe
getent passwd vpce-probe >/dev/null || \
	useradd -r -g vpce-probe -d /var/lib/vpce-probe -s /sbin/nologin -c "vpce-probe agent" vpce-probe
exit 0
