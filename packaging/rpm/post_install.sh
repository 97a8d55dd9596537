# vpce-probe %post ($1: 1 first install, 2 upgrade). Never enables or starts the service: the
# default config names no bucket or table yet.
systemd-tmpfiles --create /usr/lib/tmpfiles.d/vpce-probe.conf >/dev/null 2>&1 || :
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 1 ]; then
	echo "vpce-probe: service installed but not enabled. Name a bucket or table in" \
		"/etc/vpce-probe/config.toml, then: systemctl enable --now vpce-probe"
fi
exit 0
