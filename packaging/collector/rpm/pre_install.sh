# vpce-collector %pre: create the service's system user (the same as
# systemd/vpce-collector.sysusers, which rpm 4.16 on Amazon Linux 2023 does not apply by itself)
# before %post creates /var/lib/vpce-collector for it.
getent group vpce-collector >/dev/null || groupadd -r vpce-collector
getent passwd vpce-collector >/dev/null || \
	useradd -r -g vpce-collector -d /var/lib/vpce-collector -s /sbin/nologin -c "vpce-collector" vpce-collector
exit 0
